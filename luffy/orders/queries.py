"""The orders a buyer may see: only their own, the newest first."""

from sqlalchemy import select

from luffy.extensions import db
from luffy.models import Order

# Enough for any buyer's history on one page; the admin has the full list.
PAGE_SIZE = 100

STATE_TEXT = {Order.CREATED: "已下单"}


def orders_of(user_id, limit=PAGE_SIZE):
    """``user_id``'s orders, newest first (a flash-sale order just bought is the first row)."""
    return db.session.scalars(
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    ).all()


def state_text(order):
    return STATE_TEXT.get(order.state, order.state)
