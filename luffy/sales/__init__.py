"""Flash sales for visitors: the list of current and upcoming sales and a light status route."""

from flask import Blueprint

bp = Blueprint("sales", __name__)

from luffy.sales import views  # noqa: E402,F401  (registers the routes)
