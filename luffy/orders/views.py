"""Routes of the buyer's orders page."""

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from luffy.orders import queries

bp = Blueprint("orders", __name__)


@bp.get("/orders/")
@login_required
def my_orders():
    orders = queries.orders_of(current_user.id)
    return render_template("orders/list.html", orders=orders, state_text=queries.state_text)
