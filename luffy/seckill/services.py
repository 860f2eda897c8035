"""The flash sale's Redis side: keys, Lua scripts, admission, tickets, warm-up and status.

Redis is the gate, the database is the truth (PITFALLS 29). One Lua script admits or refuses
a buyer atomically: rate limits, sale open, already bought, sold out; an admitted buyer takes
one unit of stock, gets a *ticket* (the ``task_id`` of the API: the purchase record the result
route reads) and is pushed onto the pending list, all in the same step. So a buyer is never
admitted without a queued order. The order task (``tasks.seckill.create_order``) turns the
pending list into orders in batches (luffy/seckill/orders.py); the buy request only sends it a
message when no order task is already draining (the "kick"), which keeps ``.delay()`` off the
hot path. Reconciliation (luffy/seckill/reconcile.py) repairs what a crash or a Redis loss
leaves behind.

Keys (all ``luffy:seckill:``; the scripts build the per-sale names from the sale id they
read, so the sale state must live on one Redis server, as the Redis broker does anyway):
  ready                  present while the sale state in Redis is complete (gone after a loss)
  sales                  set of sale ids whose state is in Redis
  course:<course_id>     the id of the course's current (or next, or last) sale
  sale:<id>              hash: stock, total, start, end (epoch s), state, course, queued
  sale:<id>:buyers       hash: user id -> ticket, every buyer holding a unit of this sale
  ticket:<ticket>        hash: sale, user, state (2 waiting, 3 running, 1 bought, 0 failed), msg
  pending                list of tickets waiting for an order
  processing:<slot>      tickets a drainer holding that slot is turning into orders
  drain:lock:<slot>      held by the order task draining in that slot (SECKILL_DRAIN_SLOTS
                         of them at once, MAX_DRAIN_SLOTS slots scanned for left-overs)
  drain:kick             an order task is queued or running: buy requests send no message
  drain:fanout           a drainer asked for one more order task a moment ago
  rate:<kind>:<who>:<s>  per-second request counters
"""

import logging
import os
import threading
import time
import weakref
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select

from luffy.broker import BrokerUnavailable, publish
from luffy.extensions import db
from luffy.metrics import count
from luffy.models import Course, Order, Sale
from luffy.models.base import as_utc, utcnow
from luffy.redis_store import DirectScript, get_redis
from luffy.responses import ApiError

log = logging.getLogger(__name__)

PREFIX = "luffy:seckill:"
READY_KEY = PREFIX + "ready"
SALES_KEY = PREFIX + "sales"
PENDING_KEY = PREFIX + "pending"
KICK_KEY = PREFIX + "drain:kick"
FANOUT_KEY = PREFIX + "drain:fanout"
# Drain slots that may exist; SECKILL_DRAIN_SLOTS of them are used at once. Left-overs are
# looked for in all of them, so lowering SECKILL_DRAIN_SLOTS never strands a batch.
MAX_DRAIN_SLOTS = 8


def lock_key(slot):
    return f"{PREFIX}drain:lock:{slot}"


def processing_key(slot):
    return f"{PREFIX}processing:{slot}"


LOCK_KEYS = tuple(lock_key(slot) for slot in range(MAX_DRAIN_SLOTS))
PROCESSING_KEYS = tuple(processing_key(slot) for slot in range(MAX_DRAIN_SLOTS))
REBUILD_KICK_KEY = PREFIX + "rebuild:kick"

# A kick older than this is presumed lost (its task died): the next admission kicks again.
KICK_SECONDS = 10
# How long a web process answers "sold out" from memory before asking Redis again
# (a refund can put a unit back); this is what makes refusals after a sell-out cheap.
SOLD_OUT_MEMORY_SECONDS = 1.0
# A sale that ended less than this long ago is still reconciled.
RECENTLY_ENDED = timedelta(minutes=30)
RESULT_RATE_PER_SECOND = 10

WAITING, RUNNING, BOUGHT, FAILED = "2", "3", "1", "0"


def course_key(course_id):
    return f"{PREFIX}course:{course_id}"


def sale_key(sale_id):
    return f"{PREFIX}sale:{sale_id}"


def buyers_key(sale_id):
    return f"{PREFIX}sale:{sale_id}:buyers"


def ticket_key(ticket):
    return f"{PREFIX}ticket:{ticket}"


def rate_key(kind, who, second):
    return f"{PREFIX}rate:{kind}:{who}:{second}"


# KEYS: ready, course, user rate, address rate, pending, kick
# ARGV: user, now, ticket, user limit, address limit, kick seconds
ADMIT = """
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('EXPIRE', KEYS[3], 2) end
if n > tonumber(ARGV[4]) then return {'rate_limited'} end
n = redis.call('INCR', KEYS[4])
if n == 1 then redis.call('EXPIRE', KEYS[4], 2) end
if n > tonumber(ARGV[5]) then return {'rate_limited'} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unavailable'} end
local sale = redis.call('GET', KEYS[2])
if not sale then return {'no_sale'} end
local sk = 'luffy:seckill:sale:' .. sale
local s = redis.call('HMGET', sk, 'stock', 'start', 'end', 'state')
if not s[1] then return {'no_sale'} end
local bk = sk .. ':buyers'
local mine = redis.call('HGET', bk, ARGV[1])
if mine then return {'already', sale, mine} end
if s[4] ~= 'open' then return {'closed', sale} end
local now = tonumber(ARGV[2])
if now < tonumber(s[2]) then return {'not_started', sale} end
if now >= tonumber(s[3]) then return {'ended', sale} end
if tonumber(s[1]) <= 0 then return {'sold_out', sale} end
redis.call('HINCRBY', sk, 'stock', -1)
redis.call('HINCRBY', sk, 'queued', 1)
redis.call('HSET', bk, ARGV[1], ARGV[3])
redis.call('HSET', 'luffy:seckill:ticket:' .. ARGV[3],
           'sale', sale, 'user', ARGV[1], 'state', '2', 'msg', '排队中', 'at', ARGV[2])
redis.call('LPUSH', KEYS[5], ARGV[3])
local kick = 0
if redis.call('SET', KEYS[6], ARGV[3], 'NX', 'EX', tonumber(ARGV[6])) then kick = 1 end
return {'admitted', sale, kick}
"""

# Undo an admission whose kick could not be sent, if no order task has taken it yet.
# KEYS: pending, kick   ARGV: ticket
WITHDRAW = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local tk = 'luffy:seckill:ticket:' .. ARGV[1]
local t = redis.call('HMGET', tk, 'sale', 'user')
if t[1] then
  local sk = 'luffy:seckill:sale:' .. t[1]
  if redis.call('HGET', sk .. ':buyers', t[2]) == ARGV[1] then
    redis.call('HDEL', sk .. ':buyers', t[2])
    redis.call('HINCRBY', sk, 'stock', 1)
  end
  redis.call('HINCRBY', sk, 'queued', -1)
end
redis.call('DEL', tk)
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: rate key   ARGV: ticket, limit
READ_TICKET = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end
if n > tonumber(ARGV[2]) then return {'rate_limited'} end
local t = redis.call('HMGET', 'luffy:seckill:ticket:' .. ARGV[1], 'user', 'state', 'msg', 'sale')
if not t[1] then return {'none'} end
return {'ok', t[1], t[2], t[3] or '', t[4]}
"""


class Scripts:
    """The Lua scripts of one app's Redis client (EVALSHA, reloaded after a restart).

    The two run on every buy and every poll use connections of their own (DirectScript).
    """

    def __init__(self, redis):
        self.admit = DirectScript(redis, ADMIT)
        self.withdraw = redis.register_script(WITHDRAW)
        self.read_ticket = DirectScript(redis, READ_TICKET)


class SoldOutMemory:
    """Courses this process saw sold out, trusted for ``SOLD_OUT_MEMORY_SECONDS``."""

    def __init__(self):
        self._until = {}
        self._lock = threading.Lock()

    def knows(self, course_id):
        until = self._until.get(course_id)
        return until is not None and time.monotonic() < until

    def note(self, course_id):
        with self._lock:
            self._until[course_id] = time.monotonic() + SOLD_OUT_MEMORY_SECONDS

    def forget(self):
        with self._lock:
            self._until.clear()


class Tickets:
    """New tickets: 128 random bits as 32 hex digits, like ``uuid4().hex``, from a buffer.

    ``os.urandom`` lets go of the GIL around its system call; once per buy request that is one
    more thread hand-over in a busy web worker. The buffer is filled 256 tickets at a time; a
    forked child starts with an empty buffer and a new lock (``os.register_at_fork``), so two
    processes never hand out the same bytes and a lock held at the fork cannot stall the child.
    """

    BATCH = 256

    def __init__(self):
        self._forget()
        _all_tickets.add(self)

    def _forget(self):
        self._lock = threading.Lock()
        self._random = b""
        self._next = 0

    def next(self):
        with self._lock:
            if self._next >= len(self._random):
                self._random, self._next = os.urandom(16 * self.BATCH), 0
            start = self._next
            self._next = start + 16
            return self._random[start : start + 16].hex()


_all_tickets = weakref.WeakSet()


def _forget_tickets_after_fork():
    for source in list(_all_tickets):
        source._forget()


os.register_at_fork(after_in_child=_forget_tickets_after_fork)


def init_app(app):
    app.extensions["luffy_seckill_scripts"] = Scripts(app.extensions["luffy_redis"])
    app.extensions["luffy_seckill_sold_out"] = SoldOutMemory()
    app.extensions["luffy_seckill_tickets"] = Tickets()


def scripts() -> Scripts:
    return current_app.extensions["luffy_seckill_scripts"]


def sold_out_memory() -> SoldOutMemory:
    return current_app.extensions["luffy_seckill_sold_out"]


def tickets() -> Tickets:
    return current_app.extensions["luffy_seckill_tickets"]


def epoch(moment):
    return as_utc(moment).timestamp()


# -- the request path -------------------------------------------------------------------------
REFUSALS = {
    "rate_limited": (429, "请求过于频繁，请稍后再试"),
    "closed": (409, "秒杀活动已关闭"),
    "not_started": (409, "秒杀尚未开始"),
    "ended": (409, "秒杀已结束"),
    "sold_out": (409, "已售罄"),
    "already": (409, "您已经抢购过该课程"),
}


def admit(user_id, course_id, address):
    """Admit the buyer or raise ApiError; returns the ticket (the API's ``task_id``)."""
    config = current_app.config
    now = time.time()
    second = int(now)
    ticket = tickets().next()
    try:
        answer = scripts().admit(
            keys=[
                READY_KEY,
                course_key(course_id),
                rate_key("buy", user_id, second),
                rate_key("addr", address, second),
                PENDING_KEY,
                KICK_KEY,
            ],
            args=[
                user_id,
                repr(now),
                ticket,
                config["SECKILL_USER_RATE"],
                config["SECKILL_ADDRESS_RATE"],
                KICK_SECONDS,
            ],
        )
    except RedisError as error:
        log.warning("Flash sale admission failed, Redis unavailable: %s", error)
        raise ApiError(503, "服务暂时不可用，请稍后再试") from error
    verdict = answer[0].decode()
    if verdict == "admitted":
        if int(answer[2]):
            kick_order_task(ticket)
        count("seckill_admissions")
        return ticket
    count("seckill_refusals", {"reason": verdict})
    if verdict == "sold_out":
        sold_out_memory().note(course_id)
    if verdict == "already":
        status, msg = REFUSALS[verdict]
        raise ApiError(status, msg, task_id=answer[2].decode())
    if verdict in REFUSALS:
        raise ApiError(*REFUSALS[verdict])
    if verdict == "unavailable":
        request_rebuild()
        raise ApiError(503, "秒杀数据正在恢复，请稍后再试")
    # no_sale: a rare path, so asking the database which 404 it is costs nothing overall
    if db.session.get(Course, course_id) is None:
        raise ApiError(404, "课程不存在")
    raise ApiError(404, "该课程没有秒杀活动")


def kick_order_task(ticket):
    """Queue the order task; when the broker is down, undo the admission and answer 503."""
    try:
        # A short-timeout publish without retries: a dead broker costs about a second, not
        # Celery's default retry policy. Kicks are rare (one per burst), so its own
        # connection is cheap.
        publish("tasks.seckill.create_order", (ticket,))
    except BrokerUnavailable as error:
        log.warning("Could not queue the flash-sale order task: %s", error)
        try:
            withdrawn = scripts().withdraw(keys=[PENDING_KEY, KICK_KEY], args=[ticket])
        except RedisError:
            withdrawn = 0  # reconciliation finds it: it is still on the pending list
        if withdrawn:
            raise ApiError(503, "下单服务暂时不可用，请稍后再试") from error
        # An order task already took the ticket: the buyer is queued after all.


def read_result(ticket, user_id):
    """``(state, msg)`` of ``ticket`` for its owner, None when unknown or someone else's."""
    second = int(time.time())
    try:
        answer = scripts().read_ticket(
            keys=[rate_key("result", user_id, second)], args=[ticket, RESULT_RATE_PER_SECOND]
        )
    except RedisError as error:
        log.warning("Flash sale result read from the database, Redis unavailable: %s", error)
        if db.session.scalar(
            select(Order.id).where(Order.ticket == ticket, Order.user_id == user_id)
        ):
            return BOUGHT, "抢购成功"
        # No order yet, and no way to tell a waiting ticket from an unknown one: the page keeps
        # polling on a 503 instead of showing a final "no such purchase".
        raise ApiError(503, "结果暂时无法查询，请稍后再试") from error
    verdict = answer[0].decode()
    if verdict == "rate_limited":
        raise ApiError(*REFUSALS["rate_limited"])
    if verdict == "ok":
        if answer[1].decode() != str(user_id):
            return None
        return answer[2].decode(), answer[3].decode()
    # Redis no longer has the ticket (expired, or lost): the database knows the purchases.
    order = db.session.scalar(select(Order).where(Order.ticket == ticket, Order.user_id == user_id))
    if order is not None:
        return BOUGHT, "抢购成功"
    return None


def request_rebuild():
    """Ask for a reconciliation run (which rebuilds lost Redis state), at most once a few seconds."""
    try:
        if get_redis().set(REBUILD_KICK_KEY, "1", nx=True, ex=KICK_SECONDS):
            publish("tasks.seckill.reconcile")
    except (RedisError, BrokerUnavailable) as error:  # beat's next reconciliation does it anyway
        log.warning("Could not request a flash-sale rebuild: %s", error)


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
        stock = get_redis().hget(sale_key(sale.id), "stock")
    except RedisError:
        stock = None
    return max(0, int(stock)) if stock is not None else sale.remaining_stock


def ticket_of(sale, user_id):
    """The buyer's ticket in ``sale`` (Redis, else the database's order), or None."""
    try:
        ticket = get_redis().hget(buyers_key(sale.id), str(user_id))
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


def write_sale(pipe, sale, orders=None):
    """Queue on ``pipe`` the full Redis state of ``sale`` as the database has it."""
    orders = (
        orders
        if orders is not None
        else dict(
            db.session.execute(
                select(Order.user_id, Order.ticket).where(Order.sale_id == sale.id)
            ).all()
        )
    )
    key = sale_key(sale.id)
    pipe.delete(key, buyers_key(sale.id))
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
        pipe.hset(buyers_key(sale.id), mapping={str(u): t for u, t in orders.items()})
    pipe.sadd(SALES_KEY, sale.id)


def point_course(pipe, course_id, now=None):
    sale = sale_for_course(course_id, now)
    if sale is None:
        pipe.delete(course_key(course_id))
    else:
        pipe.set(course_key(course_id), sale.id)


def rebuild_all():
    """Write every live sale's state from the database (after Redis lost it); returns the count."""
    redis = get_redis()
    sales = live_sales()
    pipe = redis.pipeline(transaction=True)
    for sale in sales:
        write_sale(pipe, sale)
    for course_id in {sale.course_id for sale in sales}:
        point_course(pipe, course_id)
    pipe.set(READY_KEY, repr(time.time()))
    pipe.execute()
    sold_out_memory().forget()
    return len(sales)


# Update a sale's settings keeping its buyers; stock moves by the change of total.
# KEYS: sale   ARGV: total, start, end, state, course
UPDATE_SALE = """
local old = redis.call('HGET', KEYS[1], 'total')
if not old then return 0 end
redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[1]) - tonumber(old))
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'start', ARGV[2], 'end', ARGV[3],
           'state', ARGV[4], 'course', ARGV[5])
return 1
"""


def warm_sale(sale):
    """Load (or update) one sale in Redis after the admin saved it; False when Redis is down."""
    redis = get_redis()
    try:
        if not redis.exists(READY_KEY):
            rebuild_all()
            return True
        updated = redis.eval(
            UPDATE_SALE,
            1,
            sale_key(sale.id),
            sale.total_stock,
            repr(epoch(sale.start_at)),
            repr(epoch(sale.end_at)),
            sale.state,
            sale.course_id,
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
    redis = get_redis()
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.delete(sale_key(sale_id), buyers_key(sale_id))
        pipe.srem(SALES_KEY, sale_id)
        point_course(pipe, course_id)
        pipe.execute()
    except RedisError as error:
        log.warning("Could not drop sale %s from Redis: %s", sale_id, error)


def buyers_in_redis(sale_id):
    """How many buyers hold a unit of the sale in Redis (admitted, bought or queued)."""
    return get_redis().hlen(buyers_key(sale_id))


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
        pipe.hmget(sale_key(sale.id), "stock", "queued")
        pipe.hlen(buyers_key(sale.id))
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


# -- demo data --------------------------------------------------------------------------------
DEMO_SALE_STOCK = 10
DEMO_SALE_PRICE = "9.90"


def seed_demo_sale():
    """One flash sale on the first course (opens in a minute, runs 30 days) when there is none,
    then load the live sales into Redis; returns how many sales it added (0 or 1)."""
    added = 0
    course = db.session.scalar(select(Course).order_by(Course.id).limit(1))
    if course is not None and not db.session.scalar(select(func.count()).select_from(Sale)):
        start = utcnow().replace(microsecond=0) + timedelta(minutes=1)
        db.session.add(
            Sale(
                course_id=course.id,
                price=DEMO_SALE_PRICE,
                total_stock=DEMO_SALE_STOCK,
                remaining_stock=DEMO_SALE_STOCK,
                start_at=start,
                end_at=start + timedelta(days=30),
            )
        )
        db.session.commit()
        added = 1
    load_sales()
    return added


def load_sales():
    """Make sure Redis knows every live sale: a full rebuild after a loss, else an update."""
    try:
        if not get_redis().exists(READY_KEY):
            return rebuild_all()
        for sale in live_sales():
            warm_sale(sale)
    except RedisError as error:
        log.warning("Flash-sale state not loaded into Redis (reconciliation will): %s", error)
    return None
