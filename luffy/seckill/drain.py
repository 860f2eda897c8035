"""The order drain: admitted buyers' tickets taken off the pending list in batches.

Up to SECKILL_DRAIN_SLOTS drainers run at once, each holding one slot's lock (a redis-py
``Lock`` on ``drain:lock:<slot>``). A drainer moves tickets from ``pending`` to its slot's
``processing:<slot>`` list (marking them running), has their orders written (orders.py), then
marks them bought or failed and drops them from its list in one Lua step (``finish``). While
the backlog is longer than a batch and a slot is free, a drainer sends one more order task, so
an idle worker process joins in. A drainer that dies leaves its batch on its slot's list:
whoever takes a slot takes a left-over batch first (slots with one are taken first), and a
drainer about to stop adopts any unlocked slot that still holds one. Writing is idempotent
(orders.py), so a left-over batch whose orders were committed is only marked bought.
"""

import contextlib
import logging
import time
import uuid
from typing import NamedTuple

from flask import current_app
from redis.exceptions import LockError

from luffy.broker import send
from luffy.metrics import count
from luffy.redis_store import get_redis
from luffy.seckill import keys
from luffy.seckill.keys import BOUGHT, FAILED
from luffy.seckill.notices import notify_buyers
from luffy.seckill.orders import Outcome, write_batch
from luffy.seckill.scripts import scripts

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
# Times a ticket may be found on a dead order task's batch before it fails: a batch that kills
# its worker every time would otherwise be redelivered for ever (its units then go back).
MAX_ATTEMPTS = 3
ORDER_TASK = "tasks.seckill.create_order"
RUNNING_MSG = "正在下单"
WAITING_MSG = "排队中"
GIVEN_UP_MSG = "下单失败，名额已退回，请重试"


class Entry(NamedTuple):
    """A ticket taken for writing, with what its Redis record says (None: the record is gone)."""

    ticket: str
    sale_id: int | None
    user_id: int | None
    state: str | None


def entries(tickets, flat):
    """Entries from the tickets and their flat [sale, user, state, ...] record."""
    found = []
    for i, ticket in enumerate(tickets):
        sale_id, user_id, state = (v.decode() if v else "" for v in flat[3 * i : 3 * i + 3])
        found.append(
            Entry(
                ticket,
                int(sale_id) if sale_id else None,
                int(user_id) if user_id else None,
                state or None,
            )
        )
    return found


def read_entries(tickets, mark_running=False):
    """Entries of ``tickets``, marking the waiting ones running when asked (one Lua step)."""
    if not tickets:
        return []
    if mark_running:
        flat = scripts().mark_running(
            keys=[keys.ticket_key(t) for t in tickets], args=[RUNNING_MSG]
        )
    else:
        pipe = get_redis().pipeline(transaction=False)
        for ticket in tickets:
            pipe.hmget(keys.ticket_key(ticket), "sale", "user", "state")
        flat = [value for record in pipe.execute() for value in record]
    return entries(tickets, flat)


class DrainBusy(Exception):
    """Every drain slot is taken."""


def drain_slots():
    """How many drainers may run at once (SECKILL_DRAIN_SLOTS, within 1..MAX_DRAIN_SLOTS)."""
    return max(1, min(keys.MAX_DRAIN_SLOTS, int(current_app.config["SECKILL_DRAIN_SLOTS"])))


class Drainer:
    """Holds one drain slot's lock while it turns pending tickets into orders."""

    def __init__(self):
        self.redis = get_redis()
        self.token = uuid.uuid4().hex
        self.slot = None
        self.locks = {}  # slot -> redis-py Lock held by this drainer

    @property
    def processing(self):
        return keys.processing_key(self.slot)

    def take_slot(self, slot):
        """This drainer's lock on ``slot``, if free (the token is shared by its locks)."""
        lock = self.redis.lock(keys.lock_key(slot), timeout=LOCK_SECONDS, thread_local=False)
        if not lock.acquire(blocking=False, token=self.token):
            return False
        self.locks[slot] = lock
        return True

    def acquire(self, wait=0.0):
        """Take a free slot, one holding a left-over batch first; False after ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys.PROCESSING_KEYS:
                pipe.llen(key)
            leftovers = [slot for slot, length in enumerate(pipe.execute()) if length]
            usable = [slot for slot in range(drain_slots()) if slot not in leftovers]
            for slot in leftovers + usable:
                if self.take_slot(slot):
                    self.slot = slot
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def acquire_all(self, wait=0.0):
        """Every slot's lock (reconciliation: no order is being written meanwhile)."""
        deadline = time.monotonic() + wait
        for slot in range(keys.MAX_DRAIN_SLOTS):
            while not self.take_slot(slot):
                if time.monotonic() >= deadline:
                    self.release_all()
                    return False
                time.sleep(0.05)
        return True

    def release_all(self):
        for slot in list(self.locks):
            self.release(slot)

    def release(self, slot=None):
        """Give up a slot's lock (this drainer's slot by default); a no-op once it is not ours."""
        lock = self.locks.pop(self.slot if slot is None else slot, None)
        if lock is not None:
            with contextlib.suppress(LockError):  # expired, or finish_drain released it
                lock.release()

    def renew(self):
        try:
            self.locks[self.slot].reacquire()
        except LockError:  # it expired mid-batch: the batch is written idempotently anyway
            log.warning("Flash-sale drainer lost the lock of slot %s.", self.slot)

    def drain(self):
        """The left-over batch, then pending tickets until none is left; returns the outcomes."""
        batch_size = current_app.config["SECKILL_BATCH_SIZE"]
        outcomes = []
        batch = self.leftover_batch()
        while True:
            if not batch:
                batch = self.next_batch(batch_size)
            if not batch:
                finished = self.finish_drain()
                if finished == 1:
                    return outcomes
                if finished < 0:
                    batch = self.adopt(-1 - finished)
                continue
            outcomes.extend(place_orders(batch, self.processing))
            self.renew()
            batch = []

    def next_batch(self, batch_size):
        """A full batch, or what arrives within GATHER_SECONDS, or within LINGER_SECONDS."""
        batch = self.take(batch_size)
        if len(batch) == batch_size:
            self.fan_out(batch_size)
        elif batch:
            time.sleep(GATHER_SECONDS)
            batch += self.take(batch_size - len(batch))
        return batch or self.linger(batch_size)

    def finish_drain(self):
        """lua/finish_drain.lua: 1 stopped, 0 tickets pending, -1 - slot a batch to adopt."""
        return scripts().finish_drain(
            keys=[
                keys.PENDING_KEY,
                keys.KICK_KEY,
                keys.lock_key(self.slot),
                *keys.SLOT_KEYS,
            ],
            args=[self.token],
        )

    def take(self, count):
        """Move up to ``count`` pending tickets onto this slot's list (marked running)."""
        tickets = scripts().take_batch(keys=[keys.PENDING_KEY, self.processing], args=[count])
        return read_entries([t.decode() for t in tickets], mark_running=True)

    def fan_out(self, batch_size):
        """Send one more order task while the backlog is longer than a batch and a slot is free."""
        usable = [keys.lock_key(slot) for slot in range(drain_slots())]
        if not scripts().fan_out(
            keys=[keys.PENDING_KEY, keys.FANOUT_KEY, *usable], args=[batch_size]
        ):
            return
        try:
            send(ORDER_TASK)
        except Exception as error:  # this drainer carries on alone
            log.warning("Could not send another flash-sale order task: %s", error)

    def adopt(self, slot):
        """Move to ``slot``, whose drainer died holding a batch; returns that batch (or [])."""
        own = self.slot
        if not self.take_slot(slot):
            return []  # someone else took it
        self.release(own)  # our own list is empty: every batch was finished
        self.slot = slot
        log.warning("Flash-sale drainer adopted the left-over batch of slot %s.", slot)
        return self.leftover_batch()

    def linger(self, batch_size):
        """Wait a little for more tickets before giving up the kick.

        While this task holds the kick, buy requests send no message at all; giving it up the
        moment the queue is empty would make the next buyer pay for a broker round trip,
        again and again during a sale. A short poll keeps the hot path free of the broker.
        """
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline:
            time.sleep(LINGER_POLL_SECONDS)
            batch = self.take(batch_size)
            if batch:
                return batch
        return []

    def leftover_batch(self):
        """The batch a dead order task left on this slot's list, minus tickets tried too often."""
        batch = [t.decode() for t in self.redis.lrange(self.processing, 0, -1)]
        if not batch:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for ticket in batch:
            pipe.hincrby(keys.ticket_key(ticket), "tries", 1)
        tries = pipe.execute()
        poisoned = {t for t, n in zip(batch, tries, strict=True) if n > MAX_ATTEMPTS}
        if poisoned:
            log.error(
                "Giving up on %d flash-sale tickets after %d attempts.", len(poisoned), MAX_ATTEMPTS
            )
            finish(
                [(e, Outcome(e.ticket, FAILED, GIVEN_UP_MSG)) for e in read_entries(poisoned)],
                self.processing,
            )
        return read_entries([t for t in batch if t not in poisoned])


def drain_pending(wait=0.0):
    """Run one drainer; raises DrainBusy when every slot is taken."""
    drainer = Drainer()
    if not drainer.acquire(wait):
        raise DrainBusy()
    try:
        return drainer.drain()
    finally:
        drainer.release()  # a no-op when finish_drain already released it


def waiting_tickets():
    """Tickets on the pending list and every slot's processing list."""
    pipe = get_redis().pipeline(transaction=False)
    for key in (keys.PENDING_KEY, *keys.PROCESSING_KEYS):
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
            [(e, Outcome(e.ticket, FAILED, GIVEN_UP_MSG)) for e in read_entries(batch)],
            drainer.processing,
        )
    finally:
        drainer.release()


def requeue(ticket):
    """Put a waiting ticket that fell off every list back on ``pending``; True if it did."""
    return bool(
        scripts().requeue(
            keys=[keys.PENDING_KEY, keys.ticket_key(ticket), *keys.PROCESSING_KEYS],
            args=[ticket, WAITING_MSG],
        )
    )


def place_orders(batch, processing):
    """Have the orders of ``batch`` written, finish its tickets in Redis, tell the buyers."""
    results = write_batch(batch)
    finish(results, processing)
    outcomes = [outcome for _, outcome in results]
    bought = [o for o in outcomes if o.written]
    failed = sum(1 for o in outcomes if o.code != BOUGHT)
    if bought:
        count("seckill_orders", {"state": "bought"}, len(bought))
    if failed:
        count("seckill_orders", {"state": "failed"}, failed)
    notify_buyers(bought)
    return outcomes


def finish(results, processing):
    """lua/finish.lua over [(entry, outcome)]: mark the tickets, drop them from ``processing``."""
    if not results:
        return
    ticket_keys, args = [processing], [current_app.config["SECKILL_RESULT_TTL"]]
    for entry, outcome in results:
        sale_id = entry.sale_id if entry.sale_id is not None else "none"
        ticket_keys += [
            keys.ticket_key(entry.ticket),
            keys.sale_key(sale_id),
            keys.buyers_key(sale_id),
        ]
        msg = outcome.msg or ("抢购成功" if outcome.code == BOUGHT else "抢购失败")
        args += [outcome.ticket, outcome.code, msg]
    scripts().finish(keys=ticket_keys, args=args)
