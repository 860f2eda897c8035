"""Routes of the auth feature."""

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from luffy.auth import bp
from luffy.auth.forms import LoginForm
from luffy.extensions import db
from luffy.models import User


def safe_next_url(target, default=None):
    """Only same-site relative paths: never an open redirect. Browsers read a backslash as a
    slash, so "/\\evil.example" would leave the site like "//evil.example"."""
    default = default or url_for("home.index")
    if (
        not target
        or urlsplit(target).netloc
        or urlsplit(target).scheme
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 32 for char in target)
    ):
        return default
    return target


def landing_url(user):
    """Where a login goes without a ``next``: the admin for admins, else the home page."""
    return url_for("admin.index") if user.is_admin else url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(safe_next_url(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data))
        if user is None or not user.is_active or not user.check_password(form.password.data):
            form.password.errors.append("用户名或密码错误")
        else:
            login_user(user, remember=form.remember.data)
            return redirect(safe_next_url(request.args.get("next"), landing_url(user)))
    status = 400 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("已退出登录")
    return redirect(url_for("home.index"))
