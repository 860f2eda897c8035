"""Notifications: queue an e-mail (admins) or an SMS verification code (logged-in users)."""

from flask import Blueprint

bp = Blueprint("notify", __name__)

from luffy.notify import views  # noqa: E402,F401  (registers the routes)
