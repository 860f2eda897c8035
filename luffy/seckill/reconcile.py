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

from redis.exceptions import RedisError
from sqlalchemy import select

from luffy.broker import send
from luffy.extensions import db
from luffy.models import Order
from luffy.redis_store import get_redis
from luffy.seckill import services
from luffy.seckill.orders import Drainer, requeue, waiting_tickets
from luffy.seckill.services import (
    KICK_KEY,
    PENDING_KEY,
    PROCESSING_KEYS,
    READY_KEY,
    SALES_KEY,
    buyers_key,
    sale_key,
)

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 5

# KEYS: sale, buyers, pending, every processing list   ARGV: sale id
# Returns stock, total, buyers (flat user/ticket list), users with a queued ticket of this sale.
SNAPSHOT = """
local s = redis.call('HMGET', KEYS[1], 'stock', 'total')
local buyers = redis.call('HGETALL', KEYS[2])
local queued = {}
for k = 3, #KEYS do
  for _, t in ipairs(redis.call('LRANGE', KEYS[k], 0, -1)) do
    local info = redis.call('HMGET', 'luffy:seckill:ticket:' .. t, 'sale', 'user')
    if info[1] == ARGV[1] then queued[#queued + 1] = info[2] end
  end
end
return {s[1] or false, s[2] or false, buyers, queued}
"""

# A buyer with neither an order nor a queued ticket: give the unit back. KEYS: sale, buyers
REFUND = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'stock', 1)
redis.call('HINCRBY', KEYS[1], 'queued', -1)
local tk = 'luffy:seckill:ticket:' .. ARGV[2]
if redis.call('EXISTS', tk) == 1 then
  redis.call('HSET', tk, 'state', '0', 'msg', '下单失败，名额已退回，请重试')
  redis.call('EXPIRE', tk, tonumber(ARGV[3]))
end
return 1
"""

# An order's buyer missing from Redis: add it, taking its unit. KEYS: sale, buyers
ADD_BUYER = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 0 end
local had = redis.call('HEXISTS', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if had == 0 then redis.call('HINCRBY', KEYS[1], 'stock', -1) end
return 1
"""

# stock := total - buyers, atomically. KEYS: sale, buyers  ARGV: total
FIX_STOCK = """
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local expected = tonumber(ARGV[1]) - redis.call('HLEN', KEYS[2])
redis.call('HSET', KEYS[1], 'total', ARGV[1])
if expected < 0 then
  redis.call('HSET', KEYS[1], 'stock', 0)
  return {stock, expected}
end
if stock ~= expected then redis.call('HSET', KEYS[1], 'stock', expected) end
return {stock, expected}
"""


def reconcile_sales():
    """Check and repair every live sale; returns a report (also logged, alerts mailed)."""
    from flask import current_app

    report = {"rebuilt": False, "busy": False, "sales": [], "problems": []}
    redis = get_redis()
    drainer = Drainer()
    if not drainer.acquire_all(wait=LOCK_WAIT_SECONDS):
        report["busy"] = True  # an order task is busy for long; next run
        return report
    try:
        if not redis.exists(READY_KEY):
            report["rebuilt"] = True
            report["rebuilt_sales"] = services.rebuild_all()
            log.warning(
                "Flash-sale state rebuilt in Redis from the database (%s sales).",
                report["rebuilt_sales"],
            )
        live = services.live_sales()
        for sale in live:
            report["sales"].append(
                check_sale(redis, sale, current_app.config["SECKILL_RESULT_TTL"])
            )
        drop_old_sales(redis, {sale.id for sale in live})
        pipe = redis.pipeline(transaction=True)
        for course_id in {sale.course_id for sale in live}:
            services.point_course(pipe, course_id)
        pipe.execute()
    finally:
        drainer.release_all()
    waiting = waiting_tickets()
    if waiting and redis.set(KICK_KEY, "reconcile", nx=True, ex=services.KICK_SECONDS):
        send("tasks.seckill.create_order")
    report["waiting"] = waiting
    problems = [f"sale {s['sale_id']}: {p}" for s in report["sales"] for p in s["problems"]]
    report["problems"] = problems
    if problems:
        from luffy.alerts import send_alert

        send_alert("秒杀对账发现无法修复的差异", "\n".join(problems), "seckill-reconcile")
        log.error("Flash-sale reconciliation problems: %s", problems)
    return report


def check_sale(redis, sale, result_ttl):
    result = {"sale_id": sale.id, "repaired": [], "problems": []}
    orders = dict(
        db.session.execute(
            select(Order.user_id, Order.ticket).where(Order.sale_id == sale.id)
        ).all()
    )
    if len(orders) != sale.total_stock - sale.remaining_stock:
        result["problems"].append(
            f"database has {len(orders)} orders but total - remaining = "
            f"{sale.total_stock - sale.remaining_stock}"
        )
    skey, bkey = sale_key(sale.id), buyers_key(sale.id)
    stock, total, flat, queued = redis.eval(
        SNAPSHOT, 3 + len(PROCESSING_KEYS), skey, bkey, PENDING_KEY, *PROCESSING_KEYS, sale.id
    )
    if stock is None:
        pipe = redis.pipeline(transaction=True)
        services.write_sale(pipe, sale, orders)
        pipe.execute()
        result["repaired"].append("sale state missing from Redis: loaded from the database")
        return result
    buyers = {int(flat[i]): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    queued_users = {int(u) for u in queued}
    for user_id, ticket in buyers.items():
        if user_id in orders or user_id in queued_users:
            continue
        if requeue(ticket):
            result["repaired"].append(f"user {user_id}: order task lost, queued again")
        elif redis.eval(REFUND, 2, skey, bkey, user_id, ticket, result_ttl):
            result["repaired"].append(f"user {user_id}: ticket lost, unit given back")
    for user_id, ticket in orders.items():
        if buyers.get(user_id) != ticket and redis.eval(ADD_BUYER, 2, skey, bkey, user_id, ticket):
            result["repaired"].append(f"user {user_id}: order missing from Redis, added")
    before, expected = redis.eval(FIX_STOCK, 2, skey, bkey, sale.total_stock)
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


def drop_old_sales(redis, live_ids):
    """Forget the Redis state of sales no longer live (their results keep their own TTL)."""
    try:
        for raw in redis.smembers(SALES_KEY):
            sale_id = int(raw)
            if sale_id not in live_ids:
                course_id = redis.hget(sale_key(sale_id), "course")
                pipe = redis.pipeline(transaction=True)
                pipe.delete(sale_key(sale_id), buyers_key(sale_id))
                pipe.srem(SALES_KEY, sale_id)
                if course_id is not None:
                    services.point_course(pipe, int(course_id))  # its next sale, or none
                pipe.execute()
    except RedisError as error:
        log.warning("Could not drop old flash-sale state: %s", error)
