"""Flask CLI commands: ``seed-demo`` and ``create-admin``."""

from datetime import timedelta

import click
from flask import current_app
from sqlalchemy import func, select

from luffy.extensions import db
from luffy.models import Banner, Course, Sale, User
from luffy.models.base import utcnow
from luffy.seckill.sales import load_sales

DEMO_BANNERS = [
    ("Python 全栈开发", "/static/img/banners/python.svg", "/seckill/1/", 1),
    ("Linux 运维实战", "/static/img/banners/linux.svg", "/", 2),
    ("Go 语言入门", "/static/img/banners/go.svg", "/", 3),
    ("数据分析与可视化", "/static/img/banners/data.svg", "/", 4),
]
DEMO_COURSES = [
    (
        "Python 全栈开发",
        "3999.00",
        "/static/img/courses/python.svg",
        "从零开始，系统学习 Python Web 全栈开发。",
    ),
    (
        "Linux 运维实战",
        "1999.00",
        "/static/img/courses/linux.svg",
        "掌握 Linux 系统管理与自动化运维。",
    ),
    ("Go 语言入门", "999.00", "/static/img/courses/go.svg", "用 Go 写出高并发的网络服务。"),
]
DEMO_USERS = [
    # username, password, email, mobile, is_admin
    ("admin", "admin123", "admin@luffy.local", "13800000000", True),
    ("alice", "alice123", "alice@luffy.local", "13800000001", False),
    ("bob", "bob12345", "bob@luffy.local", "13800000002", False),
]


DEMO_SALE_STOCK = 10
DEMO_SALE_PRICE = "9.90"


def seed_demo_sale():
    """One flash sale on the first course (opens in a minute, runs 30 days) when there is none,
    then load the live sales into Redis; returns how many sales it added (0 or 1)."""
    added = 0
    course = db.session.scalar(select(Course).order_by(Course.id).limit(1))
    if course is not None and not db.session.scalar(select(func.count()).select_from(Sale)):
        start = utcnow().replace(microsecond=0) + timedelta(minutes=1)
        db.session.add(
            Sale(
                course_id=course.id,
                price=DEMO_SALE_PRICE,
                total_stock=DEMO_SALE_STOCK,
                remaining_stock=DEMO_SALE_STOCK,
                start_at=start,
                end_at=start + timedelta(days=30),
            )
        )
        db.session.commit()
        added = 1
    load_sales()
    return added


def seed_demo_data():
    """Load demo users, courses and banners into an empty database; returns what it added."""
    added = {"users": 0, "courses": 0, "banners": 0}
    if not db.session.scalar(select(func.count()).select_from(User)):
        for username, password, email, mobile, is_admin in DEMO_USERS:
            user = User(username=username, email=email, mobile=mobile, is_admin=is_admin)
            user.set_password(password)
            db.session.add(user)
            added["users"] += 1
    if not db.session.scalar(select(func.count()).select_from(Course)):
        for name, price, cover, description in DEMO_COURSES:
            db.session.add(
                Course(name=name, price=price, cover_image=cover, description=description)
            )
            added["courses"] += 1
    if not db.session.scalar(select(func.count()).select_from(Banner)):
        for title, image, link, orders in DEMO_BANNERS:
            db.session.add(Banner(title=title, image=image, link=link, orders=orders))
            added["banners"] += 1
    db.session.commit()
    added["sales"] = seed_demo_sale()
    return added


def init_app(app):
    @app.cli.command("seed-demo")
    def seed_demo():
        """Load demo users, courses and banners (does nothing the second time)."""
        if current_app.config.get("ENV_NAME") == "production":
            # Demo users have published passwords (admin / admin123): never on a live site.
            raise click.ClickException(
                "seed-demo refuses to run with LUFFY_ENV=production: the demo users have "
                "published passwords. Create the admin with `flask --app wsgi create-admin`."
            )
        added = seed_demo_data()
        if not any(added.values()):
            click.echo("Demo data already present; nothing to do.")
            return
        click.echo("Added " + ", ".join(f"{n} {kind}" for kind, n in added.items() if n) + ".")
        if added["users"]:
            click.echo("Demo logins: admin / admin123 (admin), alice / alice123, bob / bob12345.")

    @app.cli.command("create-admin")
    @click.argument("username")
    @click.option("--email", default=None, help="The admin's e-mail address.")
    @click.password_option(help="The admin's password (asked for when omitted).")
    def create_admin(username, email, password):
        """Create an admin user, or make an existing user an admin with a new password."""
        username = username.strip()
        if not username or len(username) > 64:
            raise click.BadParameter("must be 1 to 64 characters", param_hint="USERNAME")
        if len(password) < 8:
            raise click.BadParameter("must be at least 8 characters", param_hint="--password")
        user = db.session.scalar(select(User).where(User.username == username))
        if email:
            owner = db.session.scalar(select(User).where(User.email == email))
            if owner is not None and owner is not user:
                raise click.BadParameter(
                    f"already used by user {owner.username!r}", param_hint="--email"
                )
        if user is None:
            user = User(username=username, email=email)
            db.session.add(user)
        elif email:
            user.email = email
        user.is_admin = True
        user.is_active = True
        user.set_password(password)
        db.session.commit()
        current_app.logger.info("admin user %s saved", username)
        click.echo(f"Admin user {username!r} saved; log in at /login.")
