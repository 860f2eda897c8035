"""Orders for buyers: the logged-in user's own orders."""

from flask import Blueprint

bp = Blueprint("orders", __name__)

from luffy.orders import views  # noqa: E402,F401  (registers the routes)
