"""Turning admitted buyers into orders, in batches, idempotently (run by the order task).

Up to SECKILL_DRAIN_SLOTS drainers run at once, each holding one slot's lock
(``drain:lock:<slot>``). A drainer moves tickets from ``pending`` to its slot's
``processing:<slot>`` list (marking them running), writes their orders in one transaction,
then marks them bought or failed and drops them from its list in one Lua step. While the
backlog is longer than a batch and a slot is free, a drainer sends one more order task, so
an idle worker process joins in. A drainer that dies leaves its batch on its slot's list:
whoever takes a slot takes a left-over batch first (slots with one are taken first), and a
drainer about to stop adopts any unlocked slot that still holds one. Writing an order twice
is impossible: a ticket whose buyer already has an order in the sale is simply marked bought
(UNIQUE(sale_id, user_id) and UNIQUE(ticket) hold the line if anything else slips), and the
stock UPDATE is guarded, so concurrent drainers never sell what the database does not have.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from flask import current_app
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from luffy.broker import send
from luffy.extensions import db
from luffy.metrics import count
from luffy.models import Order, Sale, User
from luffy.models.base import utcnow
from luffy.redis_store import get_redis
from luffy.seckill.services import (
    BOUGHT,
    FAILED,
    FANOUT_KEY,
    KICK_KEY,
    LOCK_KEYS,
    MAX_DRAIN_SLOTS,
    PENDING_KEY,
    PROCESSING_KEYS,
    lock_key,
    processing_key,
    ticket_key,
)

log = logging.getLogger(__name__)

LOCK_SECONDS = 15
# How long an order task waits for more buyers once the queue is empty, and how often it looks.
LINGER_SECONDS = 2.0
LINGER_POLL_SECONDS = 0.05
# A batch smaller than SECKILL_BATCH_SIZE waits this long for more tickets before it is
# written: during a steady stream of buyers each transaction then carries dozens of orders
# instead of a few (a transaction's cost is mostly per batch, not per order). Buyers poll
# once a second, so they never notice.
GATHER_SECONDS = 0.05
# Times a ticket may be found on a dead order task's batch before it fails.
MAX_ATTEMPTS = 3

# Returns ticket, sale, user, state for each ticket taken ('' where its record is gone); a
# waiting ticket is marked running. KEYS: pending, processing   ARGV: batch size
TAKE_BATCH = """
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local t = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not t then break end
  local tk = 'luffy:seckill:ticket:' .. t
  local info = redis.call('HMGET', tk, 'sale', 'user', 'state')
  if info[3] == '2' then
    redis.call('HSET', tk, 'state', '3', 'msg', '正在下单')
    info[3] = '3'
  end
  taken[#taken + 1] = t
  taken[#taken + 1] = info[1] or ''
  taken[#taken + 1] = info[2] or ''
  taken[#taken + 1] = info[3] or ''
end
return taken
"""

# Finish tickets. ARGV: ttl, then triples (ticket, outcome, msg); outcome: 1 bought,
# 0 failed and the unit goes back, x failed and the unit stays gone (the database had none).
# KEYS: processing
FINISH = """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local t, outcome, msg = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local tk = 'luffy:seckill:ticket:' .. t
  local info = redis.call('HMGET', tk, 'sale', 'user', 'state')
  redis.call('LREM', KEYS[1], 0, t)
  if info[1] and info[3] ~= '1' and info[3] ~= '0' then
    local sk = 'luffy:seckill:sale:' .. info[1]
    redis.call('HINCRBY', sk, 'queued', -1)
    if outcome == '1' then
      redis.call('HSET', tk, 'state', '1', 'msg', msg)
    else
      redis.call('HSET', tk, 'state', '0', 'msg', msg)
      if redis.call('HGET', sk .. ':buyers', info[2]) == t then
        redis.call('HDEL', sk .. ':buyers', info[2])
        if outcome == '0' and redis.call('EXISTS', sk) == 1 then
          redis.call('HINCRBY', sk, 'stock', 1)
        end
      end
    end
    redis.call('EXPIRE', tk, ttl)
  end
end
return 1
"""

# Release the lock and clear the kick together, only when nothing is pending and no unlocked
# slot holds a left-over batch: an admission after this sees no kick and sends a new order
# task. Returns 1 (stopped), 0 (tickets pending) or -1 - slot (a left-over batch to adopt).
# KEYS: pending, kick, own lock, then every slot's lock and processing list  ARGV: token
FINISH_DRAIN = """
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
for i = 4, #KEYS, 2 do
  if KEYS[i] ~= KEYS[3] and redis.call('EXISTS', KEYS[i]) == 0 and redis.call('LLEN', KEYS[i + 1]) > 0 then
    return -1 - (i - 4) / 2
  end
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
"""

# One more order task, when the backlog is longer than a batch and a slot is free (at most one
# request per second). KEYS: pending, fanout, the usable slots' locks  ARGV: batch size
FAN_OUT = """
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[1]) then return 0 end
local held = 0
for i = 3, #KEYS do held = held + redis.call('EXISTS', KEYS[i]) end
if held >= #KEYS - 2 then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 1000) then return 0 end
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Put a ticket that is waiting but on no list back on ``pending``.
# KEYS: pending, every processing list
REQUEUE = """
local state = redis.call('HGET', 'luffy:seckill:ticket:' .. ARGV[1], 'state')
if state ~= '2' and state ~= '3' then return 0 end
for i = 1, #KEYS do
  if redis.call('LPOS', KEYS[i], ARGV[1]) then return 0 end
end
redis.call('HSET', 'luffy:seckill:ticket:' .. ARGV[1], 'state', '2', 'msg', '排队中')
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
"""


class Entry(NamedTuple):
    """A ticket taken for writing, with what its Redis record says (None: the record is gone)."""

    ticket: str
    sale_id: int | None
    user_id: int | None
    state: str | None


def entries_from(flat):
    """Entries from TAKE_BATCH's flat reply [ticket, sale, user, state, ...]."""
    entries = []
    for i in range(0, len(flat), 4):
        ticket, sale_id, user_id, state = (value.decode() for value in flat[i : i + 4])
        entries.append(
            Entry(
                ticket,
                int(sale_id) if sale_id else None,
                int(user_id) if user_id else None,
                state or None,
            )
        )
    return entries


def ticket_entries(tickets):
    """Entries for tickets read off a list (a left-over batch): one pipelined read."""
    pipe = get_redis().pipeline(transaction=False)
    for ticket in tickets:
        pipe.hmget(ticket_key(ticket), "sale", "user", "state")
    return [
        Entry(
            ticket,
            int(sale_id) if sale_id else None,
            int(user_id) if user_id else None,
            state.decode() if state else None,
        )
        for ticket, (sale_id, user_id, state) in zip(tickets, pipe.execute(), strict=False)
    ]


@dataclass
class Outcome:
    ticket: str
    code: str  # "1" bought, "0" failed (unit back), "x" failed (no unit to give back)
    msg: str
    written: bool = False  # a new order (not a redelivery of one written before)
    order_id: int | None = None  # read for new orders whose buyer can be told only
    contact: bool = False  # the buyer has a mobile or an e-mail address


class DrainBusy(Exception):
    """Another order task holds the lock."""


def drain_slots():
    """How many drainers may run at once (SECKILL_DRAIN_SLOTS, within 1..MAX_DRAIN_SLOTS)."""
    return max(1, min(MAX_DRAIN_SLOTS, int(current_app.config["SECKILL_DRAIN_SLOTS"])))


class Drainer:
    """Holds one drain slot's lock while it turns pending tickets into orders."""

    def __init__(self):
        self.redis = get_redis()
        self.token = uuid.uuid4().hex
        self.slot = None

    @property
    def lock(self):
        return lock_key(self.slot)

    @property
    def processing(self):
        return processing_key(self.slot)

    def acquire(self, wait=0.0):
        """Take a free slot, one holding a left-over batch first; False after ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for key in PROCESSING_KEYS:
                pipe.llen(key)
            leftovers = [slot for slot, length in enumerate(pipe.execute()) if length]
            usable = [slot for slot in range(drain_slots()) if slot not in leftovers]
            for slot in leftovers + usable:
                if self.redis.set(lock_key(slot), self.token, nx=True, ex=LOCK_SECONDS):
                    self.slot = slot
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def acquire_all(self, wait=0.0):
        """Every slot's lock (reconciliation: no order is being written meanwhile)."""
        deadline = time.monotonic() + wait
        held = []
        for key in LOCK_KEYS:
            while not self.redis.set(key, self.token, nx=True, ex=LOCK_SECONDS):
                if time.monotonic() >= deadline:
                    for taken in held:
                        self.redis.eval(RELEASE, 1, taken, self.token)
                    return False
                time.sleep(0.05)
            held.append(key)
        return True

    def release_all(self):
        for key in LOCK_KEYS:
            self.redis.eval(RELEASE, 1, key, self.token)

    def release(self):
        if self.slot is not None:
            self.redis.eval(RELEASE, 1, self.lock, self.token)

    def renew(self):
        self.redis.eval(RENEW, 1, self.lock, self.token, LOCK_SECONDS * 1000)

    def drain(self):
        """Process the left-over batch, then pending tickets until none is left; returns outcomes."""
        batch_size = current_app.config["SECKILL_BATCH_SIZE"]
        outcomes = []
        batch = self.leftover_batch()
        while True:
            if not batch:
                batch = self.take(batch_size)
                if len(batch) == batch_size:
                    self.fan_out(batch_size)
                elif batch:
                    time.sleep(GATHER_SECONDS)
                    batch += self.take(batch_size - len(batch))
            if not batch:
                batch = self.linger(batch_size)
            if not batch:
                finished = self.redis.eval(
                    FINISH_DRAIN,
                    3 + 2 * MAX_DRAIN_SLOTS,
                    PENDING_KEY,
                    KICK_KEY,
                    self.lock,
                    *interleave(LOCK_KEYS, PROCESSING_KEYS),
                    self.token,
                )
                if finished == 1:
                    return outcomes
                if finished < 0:
                    batch = self.adopt(-1 - finished)
                continue
            outcomes.extend(place_orders(batch, self.processing))
            self.renew()
            batch = []

    def take(self, count):
        """Move up to ``count`` pending tickets onto this slot's list (marked running): Entries."""
        return entries_from(self.redis.eval(TAKE_BATCH, 2, PENDING_KEY, self.processing, count))

    def fan_out(self, batch_size):
        """Send one more order task while the backlog is longer than a batch and a slot is free."""
        usable = [lock_key(slot) for slot in range(drain_slots())]
        if not self.redis.eval(
            FAN_OUT, 2 + len(usable), PENDING_KEY, FANOUT_KEY, *usable, batch_size
        ):
            return
        try:
            send("tasks.seckill.create_order")
        except Exception as error:  # this drainer carries on alone
            log.warning("Could not send another flash-sale order task: %s", error)

    def adopt(self, slot):
        """Move to ``slot``, whose drainer died holding a batch; returns that batch (or [])."""
        if not self.redis.set(lock_key(slot), self.token, nx=True, ex=LOCK_SECONDS):
            return []  # someone else took it
        self.release()  # our own list is empty: every batch was finished
        self.slot = slot
        log.warning("Flash-sale drainer adopted the left-over batch of slot %s.", slot)
        return self.leftover_batch()

    def linger(self, batch_size):
        """Wait a little for more tickets before giving up the kick.

        While this task holds the kick, buy requests send no message at all; giving it up the
        moment the queue is empty would make the next buyer pay for a broker round trip,
        again and again during a sale. A short poll keeps the hot path free of ``.delay()``.
        """
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline:
            time.sleep(LINGER_POLL_SECONDS)
            batch = self.take(batch_size)
            if batch:
                return batch
        return []

    def leftover_batch(self):
        """The batch a dead order task left on this slot's list, minus tickets tried too often.

        A batch that kills its worker every time (PITFALLS 4) would otherwise be redelivered
        for ever: after MAX_ATTEMPTS its tickets fail and their units go back.
        """
        batch = [t.decode() for t in self.redis.lrange(self.processing, 0, -1)]
        if not batch:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for ticket in batch:
            pipe.hincrby(ticket_key(ticket), "tries", 1)
        tries = pipe.execute()
        poisoned = [t for t, n in zip(batch, tries, strict=False) if n > MAX_ATTEMPTS]
        if poisoned:
            log.error(
                "Giving up on %d flash-sale tickets after %d attempts.", len(poisoned), MAX_ATTEMPTS
            )
            finish(
                [Outcome(t, FAILED, "下单失败，名额已退回，请重试") for t in poisoned],
                self.processing,
            )
        return ticket_entries([t for t in batch if t not in set(poisoned)])


def drain_pending(wait=0.0):
    """Run one drainer; raises DrainBusy when every slot is taken."""
    drainer = Drainer()
    if not drainer.acquire(wait):
        raise DrainBusy()
    try:
        return drainer.drain()
    finally:
        drainer.release()  # no-op when FINISH_DRAIN already released it


def waiting_tickets():
    """Tickets on the pending list and every slot's processing list."""
    pipe = get_redis().pipeline(transaction=False)
    for key in (PENDING_KEY, *PROCESSING_KEYS):
        pipe.llen(key)
    return sum(pipe.execute())


def give_up(reason):
    """The order task failed for good: fail the batch it left (a slot holding a left-over
    batch is taken first, and the failed task's slot is one) and give the units back."""
    drainer = Drainer()
    if not drainer.acquire(wait=LOCK_SECONDS):
        return
    try:
        batch = [t.decode() for t in drainer.redis.lrange(drainer.processing, 0, -1)]
        log.error("Flash-sale order task gave up on %d tickets: %s", len(batch), reason)
        finish(
            [Outcome(t, FAILED, "下单失败，名额已退回，请重试") for t in batch], drainer.processing
        )
    finally:
        drainer.release()


def requeue(ticket):
    """Put a waiting ticket that fell off every list back on ``pending``; True if it did."""
    return bool(
        get_redis().eval(REQUEUE, 1 + MAX_DRAIN_SLOTS, PENDING_KEY, *PROCESSING_KEYS, ticket)
    )


def interleave(locks, lists):
    return [key for pair in zip(locks, lists, strict=False) for key in pair]


def place_orders(entries, processing):
    """Write the orders of ``entries`` (one transaction per sale), then finish them in Redis."""
    outcomes, by_sale = [], {}
    for ticket, sale_id, user_id, state in entries:
        if sale_id is None or user_id is None:
            outcomes.append(Outcome(ticket, FAILED, "抢购记录已丢失"))  # Redis lost it
        elif state in (BOUGHT, FAILED):
            outcomes.append(Outcome(ticket, state, ""))  # already finished
        else:
            by_sale.setdefault(sale_id, []).append((ticket, user_id))
    for sale_id, entries in by_sale.items():
        outcomes.extend(place_sale_orders(sale_id, entries))
    finish(outcomes, processing)
    bought = [o for o in outcomes if o.written]
    failed = sum(1 for o in outcomes if o.code != BOUGHT)
    if bought:
        count("seckill_orders", {"state": "bought"}, len(bought))
    if failed:
        count("seckill_orders", {"state": "failed"}, failed)
    notify_buyers(bought)
    return outcomes


def finish(outcomes, processing):
    """Mark ``outcomes`` in Redis and drop their tickets from the ``processing`` list."""
    if not outcomes:
        return
    args = [current_app.config["SECKILL_RESULT_TTL"]]
    for outcome in outcomes:
        args += [
            outcome.ticket,
            outcome.code,
            outcome.msg or ("抢购成功" if outcome.code == BOUGHT else "抢购失败"),
        ]
    get_redis().eval(FINISH, 1, processing, *args)


def place_sale_orders(sale_id, entries):
    try:
        return write_orders(sale_id, entries)
    except IntegrityError:
        # Someone else wrote one of these orders meanwhile: settle them one by one.
        db.session.rollback()
        outcomes = []
        for entry in entries:
            try:
                outcomes.extend(write_orders(sale_id, [entry]))
            except IntegrityError:
                db.session.rollback()
                outcomes.extend(write_orders(sale_id, [entry]))
        return outcomes


# Built once, with expanding parameters: each batch binds its ids instead of building the
# statement again and coercing a hundred literals.
EXISTING_ORDERS = select(Order.user_id, Order.ticket).where(
    Order.sale_id == bindparam("sale_id"), Order.user_id.in_(bindparam("user_ids", expanding=True))
)
BUYERS = select(User.id, User.mobile, User.email).where(
    User.id.in_(bindparam("user_ids", expanding=True)), User.is_active.is_(True)
)
INSERT_ORDERS = insert(Order.__table__)  # Core executemany: the rows are complete dicts


def write_orders(sale_id, entries):
    """One transaction: the orders of ``entries`` [(ticket, user_id)] in ``sale_id``."""
    session = db.session
    outcomes = []
    # No row lock here: concurrent drainers would queue behind it for the whole transaction.
    # The guarded stock UPDATE below locks the sale row only from there to the commit, and
    # the UNIQUE constraints catch a buyer written by two drainers at once.
    sale = session.scalar(select(Sale).where(Sale.id == sale_id))
    user_ids = {"user_ids": [user_id for _, user_id in entries]}
    existing = dict(session.execute(EXISTING_ORDERS, {"sale_id": sale_id, **user_ids}).all())
    contacts = {
        user_id: bool(mobile or email)
        for user_id, mobile, email in session.execute(BUYERS, user_ids)
    }
    new = []
    for ticket, user_id in entries:
        if user_id in existing:
            if existing[user_id] == ticket:
                outcomes.append(Outcome(ticket, BOUGHT, "抢购成功"))  # a redelivery
            else:
                outcomes.append(Outcome(ticket, "0", "您已经抢购过该课程"))
        elif sale is None or sale.state != Sale.OPEN:
            outcomes.append(Outcome(ticket, "0", "秒杀活动已关闭"))
        elif user_id not in contacts:
            outcomes.append(Outcome(ticket, "0", "账号不可用"))
        else:
            new.append((ticket, user_id))
    now = utcnow()
    rows = [
        {
            "ticket": ticket,
            "user_id": user_id,
            "course_id": sale.course_id,
            "sale_id": sale_id,
            "price": sale.price,
            "state": Order.CREATED,
            "created_at": now,
        }
        for ticket, user_id in new
    ]
    taken = 0
    if rows:
        # The orders first, the stock last: the sale row is locked from the UPDATE to the
        # commit only, so drainers in other slots wait on it for as short a time as possible.
        session.execute(INSERT_ORDERS, rows)
        if decrement_stock(sale_id, len(rows)):
            taken = len(rows)
        else:  # fewer units left than this batch wants (the sale's last ones): take what is left
            session.rollback()
            taken = take_stock(sale_id, len(rows))
            rows = rows[:taken]
            if rows:
                session.execute(INSERT_ORDERS, rows)
    session.commit()
    # Order ids are only needed for the notices: read them for buyers who can be told.
    notified = [r["ticket"] for r in rows if contacts[r["user_id"]]]
    ids = (
        dict(
            session.execute(select(Order.ticket, Order.id).where(Order.ticket.in_(notified))).all()
        )
        if notified
        else {}
    )
    outcomes += [
        Outcome(r["ticket"], BOUGHT, "抢购成功", True, ids.get(r["ticket"]), contacts[r["user_id"]])
        for r in rows
    ]
    outcomes += [Outcome(ticket, "x", "已售罄") for ticket, _ in new[taken:]]
    return outcomes


def take_stock(sale_id, wanted):
    """Decrement the database stock by up to ``wanted``; returns how many units were taken.

    The UPDATE is guarded (``remaining_stock >= n``, i.e. ``> 0`` for one unit) and a CHECK
    keeps the column non-negative, so the database never sells what it does not have even if
    Redis admitted too many (after losing writes, say).
    """
    session = db.session
    while wanted > 0:
        if decrement_stock(sale_id, wanted):
            return wanted
        left = session.scalar(select(Sale.remaining_stock).where(Sale.id == sale_id)) or 0
        wanted = min(wanted, left)
        if left <= 0:
            return 0
    return 0


def decrement_stock(sale_id, units):
    """Take ``units`` from the database stock if that many are left; True when it did."""
    result = db.session.execute(
        update(Sale)
        .where(Sale.id == sale_id, Sale.remaining_stock >= units)
        .values(remaining_stock=Sale.remaining_stock - units)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def notify_buyers(outcomes):
    """Queue a notice for each new order whose buyer has a mobile or an e-mail address."""
    for outcome in outcomes:
        if not (outcome.contact and outcome.order_id):
            continue
        try:
            send("tasks.seckill.notify_buyer", (outcome.order_id,), queue="notify")
        except Exception as error:  # the order stands; the notice is best effort
            log.warning("Could not queue the notice of order %s: %s", outcome.order_id, error)


ORDER_SMS = "【路飞学城】恭喜您秒杀成功：{course}，秒杀价 ¥{price}，订单号 {order_id}。"
NOTIFIED_KEY = "luffy:seckill:notified:{}:{}"
NOTIFIED_TTL = 7 * 86400


def send_order_notice(order_id):
    """Text (and mail, when the buyer has an address) the buyer of ``order_id``, once each."""
    from luffy.sms import get_sms_backend

    order = db.session.get(Order, order_id)
    if order is None:
        return {"order": order_id, "sent": []}
    redis = get_redis()
    text = ORDER_SMS.format(course=order.course.name, price=order.price, order_id=order.id)
    sent = []
    if order.user.mobile and redis.set(
        NOTIFIED_KEY.format(order_id, "sms"), "1", nx=True, ex=NOTIFIED_TTL
    ):
        try:
            get_sms_backend().send(order.user.mobile, text)
        except Exception:
            redis.delete(NOTIFIED_KEY.format(order_id, "sms"))  # the retry sends it
            raise
        sent.append("sms")
    if order.user.email and redis.set(
        NOTIFIED_KEY.format(order_id, "mail"), "1", nx=True, ex=NOTIFIED_TTL
    ):
        send("tasks.user.send_email", (order.user.email, "秒杀成功", "notice", {"message": text}))
        sent.append("mail")
    return {"order": order_id, "sent": sent}
