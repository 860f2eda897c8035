"""Site users: buyers and admins."""

import secrets

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from luffy.extensions import db
from luffy.models.base import TimestampMixin


def new_session_token():
    return secrets.token_urlsafe(24)


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(120), unique=True)
    mobile: Mapped[str | None] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Part of the id Flask-Login keeps in the session and the remember cookie ("<id>:<token>",
    # Flask-Login's "alternative token"): a new token ends every earlier session and remember
    # cookie of the user (logout, a password change).
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)

    def get_id(self):
        if not self.session_token:
            self.session_token = new_session_token()
        return f"{self.id}:{self.session_token}"

    def end_sessions(self):
        """Log the user out everywhere: every session and remember cookie stops working."""
        self.session_token = new_session_token()

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password):
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def __str__(self):
        return self.username
