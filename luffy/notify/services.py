"""Validation, rate limits and Redis keys for queued e-mail and SMS codes."""

import contextlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from redis.exceptions import RedisError

from luffy.broker import BrokerUnavailable, publish
from luffy.redis_store import get_redis
from luffy.responses import ApiError

MOBILE = re.compile(r"1[3-9]\d{9}")  # mainland China, 11 digits
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
CODE_KEY = "luffy:sms:code:{}"
MOBILE_LIMIT_KEY = "luffy:sms:mobile:{}"
ADDRESS_LIMIT_KEY = "luffy:sms:addr:{}"
ADDRESS_WINDOW_SECONDS = 3600
MAX_SUBJECT = 200
MAX_DELAY = timedelta(days=7)
# An eta this far in the past is still taken as "now" (clocks differ, a form took a while);
# further back it is a mistake, refused (the worker would discard such a task unrun).
PAST_GRACE = timedelta(minutes=5)

MAX_MESSAGE = 5000


def _queue(task, *args, **options):
    """Send ``task``; a broker outage answers 503 within about a second, never a 500."""
    try:
        return publish(task, args, **options).id
    except BrokerUnavailable as error:
        raise ApiError(503, "任务队列暂时不可用，请稍后再试") from error


def _text(data, name, limit):
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"缺少 {name}")
    if len(value) > limit or (name == "subject" and ("\n" in value or "\r" in value)):
        raise ApiError(400, f"{name} 不合法")
    return value.strip()


def queue_email(data):
    """Validate ``{"to", "subject", "message"[, "countdown" | "eta"]}`` and queue
    ``tasks.user.send_email`` (now, or later); returns the task id."""
    to = _text(data, "to", 254)
    if not EMAIL.fullmatch(to):
        raise ApiError(400, "邮箱格式不正确")
    subject = _text(data, "subject", MAX_SUBJECT)
    message = _text(data, "message", MAX_MESSAGE)
    return _queue(
        "tasks.user.send_email", to, subject, "notice", {"message": message}, **_when(data)
    )


def _when(data):
    """Optional delay: ``countdown`` (seconds) or ``eta`` (ISO time; without an offset it is
    in the configured TIMEZONE, Asia/Shanghai by default), at most MAX_DELAY ahead."""
    countdown, eta = data.get("countdown"), data.get("eta")
    if countdown is not None and eta is not None:
        raise ApiError(400, "countdown 与 eta 只能给一个")
    if countdown is not None:
        if (
            isinstance(countdown, bool)
            or not isinstance(countdown, int)
            or not 0 <= countdown <= MAX_DELAY.total_seconds()
        ):
            raise ApiError(400, "countdown 必须是 0 到 604800 之间的整数秒")
        return {"countdown": countdown}
    if eta is None:
        return {}
    try:
        moment = datetime.fromisoformat(eta) if isinstance(eta, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ApiError(400, "eta 必须是 ISO 8601 时间，例如 2026-12-01T09:00:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    ahead = moment - datetime.now(UTC)
    if ahead > MAX_DELAY:
        raise ApiError(400, "eta 最多只能在 7 天之后")
    if ahead < -PAST_GRACE:
        raise ApiError(400, "eta 已经过去，不能早于当前时间 5 分钟以上")
    return {"eta": moment} if ahead > timedelta(0) else {}


def valid_mobile(data):
    mobile = data.get("mobile")
    # fullmatch: "$" in re also matches before a trailing newline ("13800000000\n").
    if not isinstance(mobile, str) or not MOBILE.fullmatch(mobile):
        raise ApiError(400, "手机号格式不正确")
    return mobile


def queue_sms_code(mobile, client_address):
    """Rate-limit, store a fresh 6-digit code for ``mobile`` and queue the text; returns the
    task id. The task gets the mobile only and reads the code from Redis when it sends, so the
    code is never in a task's arguments: not in the broker, the task_results table, the
    worker's log or Flower."""
    config = current_app.config
    redis = get_redis()
    try:
        # One code per mobile per interval: SET NX is the whole check, no race.
        if not redis.set(
            MOBILE_LIMIT_KEY.format(mobile), "1", nx=True, ex=config["SMS_MOBILE_INTERVAL"]
        ):
            raise ApiError(
                429,
                "验证码发送过于频繁，请稍后再试",
                retry_after=max(1, redis.ttl(MOBILE_LIMIT_KEY.format(mobile))),
            )
        address_key = ADDRESS_LIMIT_KEY.format(client_address or "unknown")
        sent_from_address = count_in_window(redis, address_key, ADDRESS_WINDOW_SECONDS)
        if sent_from_address > config["SMS_ADDRESS_LIMIT"]:
            redis.delete(MOBILE_LIMIT_KEY.format(mobile))  # this mobile was not texted
            raise ApiError(429, "请求过于频繁，请稍后再试")
        code = f"{secrets.randbelow(10**6):06d}"
        redis.set(CODE_KEY.format(mobile), code, ex=config["SMS_CODE_TTL"])
    except RedisError as error:
        raise ApiError(503, "服务暂时不可用，请稍后再试") from error
    try:
        return _queue("tasks.order.send_sms", mobile)
    except ApiError:
        # The user may ask again at once and this try does not count. The code stays: a broker
        # that timed out may still deliver the message, and then its code must work.
        with contextlib.suppress(RedisError):  # else the limits lapse by themselves
            redis.delete(MOBILE_LIMIT_KEY.format(mobile))
            redis.decr(address_key)
        raise


def check_sms_code(mobile, code):
    """True, once, when ``code`` is the code last texted to ``mobile`` and still valid."""
    if not isinstance(code, str) or not code.isdigit() or len(code) != 6:
        return False
    key = CODE_KEY.format(mobile)

    # Compare and delete in one transaction (WATCH): of two racing checks, one uses the code.
    def use_code(pipe):
        if pipe.get(key) != code.encode():
            return False
        pipe.multi()
        pipe.delete(key)
        return True

    return get_redis().transaction(use_code, key, value_from_callable=True)


def count_in_window(redis, key, seconds):
    """INCR ``key``, whose window of ``seconds`` starts with its first hit (one MULTI)."""
    pipe = redis.pipeline(transaction=True)
    pipe.set(key, 0, nx=True, ex=seconds)
    pipe.incr(key)
    return pipe.execute()[1]


def current_sms_code(mobile):
    """The code waiting for ``mobile`` (read by the SMS task), or None once used or expired."""
    code = get_redis().get(CODE_KEY.format(mobile))
    return code.decode() if isinstance(code, bytes) else code
