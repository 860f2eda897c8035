"""Auth feature: log in and out with a Flask-Login session."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from luffy.auth import views  # noqa: E402,F401  (registers the routes)
