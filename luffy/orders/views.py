"""Routes of the buyer's orders page."""

from flask import render_template
from flask_login import current_user, login_required

from luffy.orders import bp, queries


@bp.get("/orders/")
@login_required
def my_orders():
    orders = queries.orders_of(current_user.id)
    return render_template("orders/list.html", orders=orders, state_text=queries.state_text)
