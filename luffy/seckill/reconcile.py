"""Reconciliation of the flash sale: Redis against the database, run by beat.

Per live sale (open, not ended more than half an hour ago), holding every drain slot's lock
so no order is written meanwhile, it checks:
  * database: orders = total - remaining (only a hand edit breaks it: alert, no repair);
  * every buyer Redis holds has an order or a queued ticket; a buyer whose ticket fell off
    the queue is queued again (its ticket still says waiting) or refunded (the ticket is gone);
  * every order's buyer is known to Redis (after a rebuild raced an order task);
  * Redis stock + buyers = total (fixed atomically from the buyers, which are now exact).
When Redis lost everything (no ``ready`` key) it first rebuilds the state from the database.
Anything it cannot repair is mailed to ALERT_EMAILS (throttled).
"""

import logging

from flask import current_app
from redis.exceptions import RedisError

from luffy.alerts import send_alert
from luffy.broker import send
from luffy.redis_store import get_redis
from luffy.seckill import keys, sales
from luffy.seckill.drain import Drainer, requeue, waiting_tickets
from luffy.seckill.scripts import scripts

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 5
REFUND_MSG = "下单失败，名额已退回，请重试"


def reconcile_sales():
    """Check and repair every live sale; returns a report (also logged, alerts mailed)."""
    report = {"rebuilt": False, "busy": False, "sales": [], "problems": []}
    redis = get_redis()
    drainer = Drainer()
    if not drainer.acquire_all(wait=LOCK_WAIT_SECONDS):
        report["busy"] = True  # an order task is busy for long; next run
        return report
    try:
        if not redis.exists(keys.READY_KEY):
            report["rebuilt"] = True
            report["rebuilt_sales"] = sales.rebuild_all()
            log.warning(
                "Flash-sale state rebuilt in Redis from the database (%s sales).",
                report["rebuilt_sales"],
            )
        live = sales.live_sales()
        report["sales"] = [check_sale(redis, sale) for sale in live]
        drop_old_sales(redis, {sale.id for sale in live})
        pipe = redis.pipeline(transaction=True)
        for course_id in {sale.course_id for sale in live}:
            sales.point_course(pipe, course_id)
        pipe.execute()
    finally:
        drainer.release_all()
    waiting = waiting_tickets()
    if waiting and redis.set(keys.KICK_KEY, "reconcile", nx=True, ex=keys.KICK_SECONDS):
        send("tasks.seckill.create_order")
    report["waiting"] = waiting
    problems = [f"sale {s['sale_id']}: {p}" for s in report["sales"] for p in s["problems"]]
    report["problems"] = problems
    if problems:
        send_alert("秒杀对账发现无法修复的差异", "\n".join(problems), "seckill-reconcile")
        log.error("Flash-sale reconciliation problems: %s", problems)
    return report


def snapshot(redis, sale_id):
    """(stock, total, {user: ticket}, users with a queued ticket of the sale), read at once.

    The buyers are read together with the lists (one MULTI) while every drain slot is locked:
    a buyer admitted before the read is on a list or has an order, never in between.
    """
    pipe = redis.pipeline(transaction=True)
    pipe.hmget(keys.sale_key(sale_id), "stock", "total")
    pipe.hgetall(keys.buyers_key(sale_id))
    for key in (keys.PENDING_KEY, *keys.PROCESSING_KEYS):
        pipe.lrange(key, 0, -1)
    (stock, total), buyers, *lists = pipe.execute()
    queued = [ticket for tickets in lists for ticket in tickets]
    pipe = redis.pipeline(transaction=False)
    for ticket in queued:
        pipe.hmget(keys.ticket_key(ticket.decode()), "sale", "user")
    queued_users = {
        int(user) for sale, user in pipe.execute() if user and sale == str(sale_id).encode()
    }
    buyers = {int(user): ticket.decode() for user, ticket in buyers.items()}
    return stock, total, buyers, queued_users


def check_sale(redis, sale):
    """Check one sale against the database and repair what can be repaired."""
    result = {"sale_id": sale.id, "repaired": [], "problems": []}
    orders = sales.orders_of(sale.id)
    if len(orders) != sale.total_stock - sale.remaining_stock:
        result["problems"].append(
            f"database has {len(orders)} orders but total - remaining = "
            f"{sale.total_stock - sale.remaining_stock}"
        )
    stock, _, buyers, queued_users = snapshot(redis, sale.id)
    if stock is None:
        pipe = redis.pipeline(transaction=True)
        sales.write_sale(pipe, sale, orders)
        pipe.execute()
        result["repaired"].append("sale state missing from Redis: loaded from the database")
        return result
    repair_buyers(sale, orders, buyers, queued_users, result["repaired"])
    sale_keys = [keys.sale_key(sale.id), keys.buyers_key(sale.id)]
    before, expected = scripts().fix_stock(keys=sale_keys, args=[sale.total_stock])
    if expected < 0:
        result["problems"].append(
            f"Redis holds {sale.total_stock - expected} buyers for {sale.total_stock} units"
        )
    elif before != expected:
        result["repaired"].append(f"Redis stock {before} set to {expected} (total - buyers)")
    if sale.remaining_stock < 0:
        result["problems"].append(f"database remaining stock is {sale.remaining_stock}")
    if result["repaired"]:
        log.warning("Flash sale %s repaired: %s", sale.id, result["repaired"])
    return result


def repair_buyers(sale, orders, buyers, queued_users, repaired):
    """Buyers without an order or a queued ticket, and orders whose buyer Redis forgot."""
    sale_keys = [keys.sale_key(sale.id), keys.buyers_key(sale.id)]
    ttl = current_app.config["SECKILL_RESULT_TTL"]
    for user_id, ticket in buyers.items():
        if user_id in orders or user_id in queued_users:
            continue
        if requeue(ticket):
            repaired.append(f"user {user_id}: order task lost, queued again")
        elif scripts().refund(
            keys=[*sale_keys, keys.ticket_key(ticket)], args=[user_id, ticket, ttl, REFUND_MSG]
        ):
            repaired.append(f"user {user_id}: ticket lost, unit given back")
    for user_id, ticket in orders.items():
        if buyers.get(user_id) != ticket and scripts().add_buyer(
            keys=sale_keys, args=[user_id, ticket]
        ):
            repaired.append(f"user {user_id}: order missing from Redis, added")


def drop_old_sales(redis, live_ids):
    """Forget the Redis state of sales no longer live (their results keep their own TTL)."""
    try:
        for raw in redis.smembers(keys.SALES_KEY):
            sale_id = int(raw)
            if sale_id not in live_ids:
                course_id = redis.hget(keys.sale_key(sale_id), "course")
                pipe = redis.pipeline(transaction=True)
                pipe.delete(keys.sale_key(sale_id), keys.buyers_key(sale_id))
                pipe.srem(keys.SALES_KEY, sale_id)
                if course_id is not None:
                    sales.point_course(pipe, int(course_id))  # its next sale, or none
                pipe.execute()
    except RedisError as error:
        log.warning("Could not drop old flash-sale state: %s", error)
