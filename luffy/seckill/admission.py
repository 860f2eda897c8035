"""Admission: a buy request becomes a ticket, or a refusal, in one Lua step.

Redis is the gate, the database is the truth: Redis answers the rush in a few microseconds
each, and the database, which cannot, only ever sees the buyers Redis admitted. The admission
script (lua/admit.lua) checks the rate limits, that the sale is open and not sold out and that
the user has not bought already; an admitted buyer takes one unit, gets a *ticket* (the
``task_id`` of the API) and is pushed onto the pending list, all in the same step, so a buyer
is never admitted without a queued order. The order task (``tasks.seckill.create_order``)
turns the pending list into orders (luffy/seckill/drain.py); a buy request sends it a message
only when no order task is already draining (the "kick"), which keeps the broker off the hot
path. Reconciliation (luffy/seckill/reconcile.py) repairs what a crash or a Redis loss leaves.
"""

import logging
import threading
import time
import uuid

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from luffy.broker import BrokerUnavailable, publish
from luffy.extensions import db
from luffy.metrics import count
from luffy.models import Course, Order
from luffy.redis_store import get_redis
from luffy.responses import ApiError
from luffy.seckill import keys
from luffy.seckill.keys import BOUGHT
from luffy.seckill.scripts import scripts

log = logging.getLogger(__name__)

# How long a web process answers "sold out" from memory before asking Redis again
# (a refund can put a unit back); this is what makes refusals after a sell-out cheap.
SOLD_OUT_MEMORY_SECONDS = 1.0
RESULT_RATE_PER_SECOND = 10
ORDER_TASK = "tasks.seckill.create_order"
RECONCILE_TASK = "tasks.seckill.reconcile"
WAITING_MSG = "排队中"
REFUSALS = {
    "rate_limited": (429, "请求过于频繁，请稍后再试"),
    "closed": (409, "秒杀活动已关闭"),
    "not_started": (409, "秒杀尚未开始"),
    "ended": (409, "秒杀已结束"),
    "sold_out": (409, "已售罄"),
    "already": (409, "您已经抢购过该课程"),
}


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


def init_app(app):
    app.extensions["luffy_seckill_sold_out"] = SoldOutMemory()
    # course id -> the id of its sale, as last seen: a hint only (the admission script checks
    # it against the course's key and says where the course points now)
    app.extensions["luffy_seckill_sale_of_course"] = {}


def sold_out_memory() -> SoldOutMemory:
    return current_app.extensions["luffy_seckill_sold_out"]


def admit(user_id, course_id, address):
    """Admit the buyer or raise ApiError; returns the ticket (the API's ``task_id``)."""
    sale_of_course = current_app.extensions["luffy_seckill_sale_of_course"]
    ticket = uuid.uuid4().hex  # 128 random bits, 32 hex digits
    answer = run_admission(user_id, course_id, address, ticket, sale_of_course.get(course_id, ""))
    if answer[0] == b"moved":  # the course has another sale than this process thought
        sale_of_course[course_id] = answer[1].decode()
        answer = run_admission(user_id, course_id, address, ticket, sale_of_course[course_id])
    verdict = answer[0].decode()
    if verdict == "admitted":
        if int(answer[2]):
            kick_order_task(ticket, answer[1].decode(), user_id)
        count("seckill_admissions")
        return ticket
    return refuse(verdict, answer, course_id)


def run_admission(user_id, course_id, address, ticket, sale_id):
    """One run of lua/admit.lua; Redis down is a 503."""
    config = current_app.config
    now = time.time()
    second = int(now)
    try:
        return scripts().admit(
            keys=[
                keys.READY_KEY,
                keys.course_key(course_id),
                keys.sale_key(sale_id),
                keys.buyers_key(sale_id),
                keys.ticket_key(ticket),
                keys.rate_key("buy", user_id, second),
                keys.rate_key("addr", address, second),
                keys.PENDING_KEY,
                keys.KICK_KEY,
            ],
            args=[
                user_id,
                repr(now),
                ticket,
                config["SECKILL_USER_RATE"],
                config["SECKILL_ADDRESS_RATE"],
                keys.KICK_SECONDS,
                sale_id,
                WAITING_MSG,
            ],
        )
    except RedisError as error:
        log.warning("Flash sale admission failed, Redis unavailable: %s", error)
        raise ApiError(503, "服务暂时不可用，请稍后再试") from error


def refuse(verdict, answer, course_id):
    """Raise the ApiError that answers a refused admission."""
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


def kick_order_task(ticket, sale_id, user_id):
    """Queue the order task; when the broker is down, undo the admission and answer 503."""
    try:
        # A short-timeout publish without retries: a dead broker costs about a second, not
        # Celery's default retry policy. Kicks are rare (one per burst), so its own
        # connection is cheap.
        publish(ORDER_TASK, (ticket,))
    except BrokerUnavailable as error:
        log.warning("Could not queue the flash-sale order task: %s", error)
        try:
            withdrawn = scripts().withdraw(
                keys=[
                    keys.PENDING_KEY,
                    keys.KICK_KEY,
                    keys.ticket_key(ticket),
                    keys.sale_key(sale_id),
                    keys.buyers_key(sale_id),
                ],
                args=[ticket, user_id],
            )
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
            keys=[keys.rate_key("result", user_id, second), keys.ticket_key(ticket)],
            args=[RESULT_RATE_PER_SECOND],
        )
    except RedisError as error:
        log.warning("Flash sale result read from the database, Redis unavailable: %s", error)
        if bought(ticket, user_id):
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
    return (BOUGHT, "抢购成功") if bought(ticket, user_id) else None


def bought(ticket, user_id):
    """True when the database has the order of ``ticket`` for ``user_id``."""
    return bool(
        db.session.scalar(select(Order.id).where(Order.ticket == ticket, Order.user_id == user_id))
    )


def request_rebuild():
    """Ask for a reconciliation run (which rebuilds lost Redis state), at most every few s."""
    try:
        if get_redis().set(keys.REBUILD_KICK_KEY, "1", nx=True, ex=keys.KICK_SECONDS):
            publish(RECONCILE_TASK)
    except (RedisError, BrokerUnavailable) as error:  # beat's next reconciliation does it anyway
        log.warning("Could not request a flash-sale rebuild: %s", error)
