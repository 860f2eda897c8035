"""Home feature: the page with the banner carousel and the banner API."""

from flask import Blueprint

bp = Blueprint("home", __name__)

from luffy.home import views  # noqa: E402,F401  (registers the routes)
