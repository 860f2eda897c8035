"""Sale data: what the sale page shows, loading sales into Redis, and their status.

The database holds the sales; Redis holds what the admission script needs of the live ones
(open, not ended more than RECENTLY_ENDED ago): stock, window, state, buyers, and which sale
each course points at. An admin save loads the sale at once (``warm_sale``); a Redis that lost
everything is rebuilt from the database (``rebuild_all``, run by reconciliation).
"""

import logging
import time
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import func, select

from luffy.extensions import db
from luffy.models import Order, Sale
from luffy.models.base import as_utc, utcnow
from luffy.redis_store import get_redis
from luffy.seckill import keys
from luffy.seckill.admission import sold_out_memory
from luffy.seckill.scripts import scripts

log = logging.getLogger(__name__)

# A sale that ended less than this long ago is still reconciled.
RECENTLY_ENDED = timedelta(minutes=30)


def epoch(moment):
    return as_utc(moment).timestamp()


# -- the page ---------------------------------------------------------------------------------
def sale_for_course(course_id, now=None):
    """The course's sale to show: running, else the next one, else the last one; or None."""
    now = now or utcnow()
    sales = db.session.scalars(
        select(Sale)
        .where(Sale.course_id == course_id, Sale.state == Sale.OPEN)
        .order_by(Sale.start_at)
    ).all()
    running = [s for s in sales if s.phase(now) == "running"]
    upcoming = [s for s in sales if s.phase(now) == "upcoming"]
    if running:
        return running[0]
    if upcoming:
        return upcoming[0]
    return sales[-1] if sales else None


def stock_left(sale):
    """Units a buyer can still get: Redis's count when it has one, else the database's."""
    try:
        stock = get_redis().hget(keys.sale_key(sale.id), "stock")
    except RedisError:
        stock = None
    return max(0, int(stock)) if stock is not None else sale.remaining_stock


def ticket_of(sale, user_id):
    """The buyer's ticket in ``sale`` (Redis, else the database's order), or None."""
    try:
        ticket = get_redis().hget(keys.buyers_key(sale.id), str(user_id))
        if ticket:
            return ticket.decode()
    except RedisError:
        pass
    return db.session.scalar(
        select(Order.ticket).where(Order.sale_id == sale.id, Order.user_id == user_id)
    )


# -- loading the state into Redis -------------------------------------------------------------
def live_sales(now=None):
    """Open sales that have not ended, or ended recently: the ones Redis must know."""
    now = now or utcnow()
    return db.session.scalars(
        select(Sale)
        .where(Sale.state == Sale.OPEN, Sale.end_at > now - RECENTLY_ENDED)
        .order_by(Sale.id)
    ).all()


def orders_of(sale_id):
    """{user id: ticket} of the sale's orders in the database."""
    return dict(
        db.session.execute(
            select(Order.user_id, Order.ticket).where(Order.sale_id == sale_id)
        ).all()
    )


def write_sale(pipe, sale, orders=None):
    """Queue on ``pipe`` the full Redis state of ``sale`` as the database has it."""
    orders = orders if orders is not None else orders_of(sale.id)
    key = keys.sale_key(sale.id)
    pipe.delete(key, keys.buyers_key(sale.id))
    pipe.hset(
        key,
        mapping={
            "stock": sale.total_stock - len(orders),
            "total": sale.total_stock,
            "start": repr(epoch(sale.start_at)),
            "end": repr(epoch(sale.end_at)),
            "state": sale.state,
            "course": sale.course_id,
            "queued": 0,
        },
    )
    if orders:
        pipe.hset(keys.buyers_key(sale.id), mapping={str(u): t for u, t in orders.items()})
    pipe.sadd(keys.SALES_KEY, sale.id)


def point_course(pipe, course_id, now=None):
    """Queue on ``pipe`` the course's pointer to the sale buyers get (or its removal)."""
    sale = sale_for_course(course_id, now)
    if sale is None:
        pipe.delete(keys.course_key(course_id))
    else:
        pipe.set(keys.course_key(course_id), sale.id)


def rebuild_all():
    """Write every live sale's state from the database (after Redis lost it); returns the count."""
    sales = live_sales()
    pipe = get_redis().pipeline(transaction=True)
    for sale in sales:
        write_sale(pipe, sale)
    for course_id in {sale.course_id for sale in sales}:
        point_course(pipe, course_id)
    pipe.set(keys.READY_KEY, repr(time.time()))
    pipe.execute()
    sold_out_memory().forget()
    return len(sales)


def warm_sale(sale):
    """Load (or update) one sale in Redis after the admin saved it; False when Redis is down."""
    redis = get_redis()
    try:
        if not redis.exists(keys.READY_KEY):
            rebuild_all()
            return True
        updated = scripts().update_sale(
            keys=[keys.sale_key(sale.id)],
            args=[
                sale.total_stock,
                repr(epoch(sale.start_at)),
                repr(epoch(sale.end_at)),
                sale.state,
                sale.course_id,
            ],
        )
        pipe = redis.pipeline(transaction=True)
        if not updated:
            write_sale(pipe, sale)
        point_course(pipe, sale.course_id)
        pipe.execute()
        sold_out_memory().forget()
        return True
    except RedisError as error:
        log.warning("Could not load sale %s into Redis: %s", sale.id, error)
        return False


def forget_sale(sale_id, course_id):
    """Drop a deleted sale from Redis and re-point its course."""
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.delete(keys.sale_key(sale_id), keys.buyers_key(sale_id))
        pipe.srem(keys.SALES_KEY, sale_id)
        point_course(pipe, course_id)
        pipe.execute()
    except RedisError as error:
        log.warning("Could not drop sale %s from Redis: %s", sale_id, error)


def load_sales():
    """Make sure Redis knows every live sale: a full rebuild after a loss, else an update."""
    try:
        if not get_redis().exists(keys.READY_KEY):
            return rebuild_all()
        for sale in live_sales():
            warm_sale(sale)
    except RedisError as error:
        log.warning("Flash-sale state not loaded into Redis (reconciliation will): %s", error)
    return None


def buyers_in_redis(sale_id):
    """How many buyers hold a unit of the sale in Redis (admitted, bought or queued)."""
    return get_redis().hlen(keys.buyers_key(sale_id))


# -- status, for the admin and monitoring -----------------------------------------------------
def sale_status(sale_id):
    """One sale's figures: Redis stock, database remaining, admitted, queued, finished orders."""
    sale = db.session.get(Sale, sale_id)
    if sale is None:
        return None
    status = {
        "sale_id": sale.id,
        "course_id": sale.course_id,
        "phase": sale.phase(),
        "total": sale.total_stock,
        "remaining_db": sale.remaining_stock,
        "orders": db.session.scalar(
            select(func.count()).select_from(Order).where(Order.sale_id == sale.id)
        ),
        "stock_redis": None,
        "admitted": None,
        "queued": None,
        "redis_ok": True,
    }
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hmget(keys.sale_key(sale.id), "stock", "queued")
        pipe.hlen(keys.buyers_key(sale.id))
        (stock, queued), admitted = pipe.execute()
        status.update(
            stock_redis=None if stock is None else int(stock),
            queued=None if queued is None else int(queued),
            admitted=admitted if stock is not None else None,
        )
    except RedisError:
        status["redis_ok"] = False
    return status


def running_sales():
    """``sale_status`` of every sale running now."""
    now = utcnow()
    sales = db.session.scalars(
        select(Sale)
        .where(Sale.state == Sale.OPEN, Sale.start_at <= now, Sale.end_at > now)
        .order_by(Sale.id)
    ).all()
    return [sale_status(sale.id) for sale in sales]
