"""Checking a login: the password, the same hashing time for unknown users, demo passwords."""

from functools import cache

from flask import current_app
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from luffy.extensions import db

# Passwords of the demo data (luffy/cli.py) and the first ones anyone tries: an admin with one
# of these cannot log in to a production site.
DEMO_PASSWORDS = frozenset(
    {
        "admin",
        "admin123",
        "alice123",
        "bob12345",
        "password",
        "12345678",
        "123456",
        "change-me",
        "changeme",
    }
)


class LoginRefused(Exception):
    """A right password that must still not log in; the message says why."""


@cache
def dummy_password_hash():
    """A hash made like User.set_password makes them, checked when no user matches, so an
    unknown username costs the same time as a wrong password (no user-enumeration oracle)."""
    return generate_password_hash("not-a-password-of-any-user")


def authenticate(username, password):
    """The active user ``username`` when ``password`` is right, else None (same time either
    way). Raises LoginRefused for a production admin still using a demo password."""
    from luffy.models import User

    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.password_hash:
        check_password_hash(dummy_password_hash(), password)
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    if user.is_admin and password in DEMO_PASSWORDS and is_production():
        raise LoginRefused(
            "该管理员仍在使用演示密码，生产环境禁止登录：请运行 "
            "flask --app wsgi create-admin <用户名> 设置新密码"
        )
    return user


def is_production():
    return current_app.config.get("ENV_NAME") == "production"
