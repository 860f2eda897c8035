"""Throttled alert mail to ``ALERT_EMAILS``: at most one mail per key per window, counting the rest.

``send_alert(subject, body, throttle_key)`` mails at once when the key's window is free;
otherwise it only counts, and a summary (``tasks.alerts.send_alert_summary``) goes out when
the window closes, saying how many more times it happened. Sending never raises: an SMTP or
Redis outage is logged and the caller (a failing task, a reconciliation job) carries on.
"""

import json
import logging
import threading
import time

from flask import current_app
from redis.exceptions import RedisError

from luffy.broker import publish
from luffy.mailer import send_mail
from luffy.redis_store import get_redis

log = logging.getLogger(__name__)

KEY = "luffy:alert:{key}:{part}"
SUMMARY_TASK = "tasks.alerts.send_alert_summary"

# Per-process fallback throttle, used when Redis is down: a storm still cannot mail per failure.
_local_sent = {}
_local_lock = threading.Lock()


def _key(throttle_key, part):
    return KEY.format(key=throttle_key, part=part)


def send_alert(subject, body, throttle_key):
    """Mail an alert unless ``throttle_key`` was mailed within ALERT_THROTTLE_SECONDS.

    Returns True when a mail went out. Never raises.
    """
    try:
        recipients = current_app.config.get("ALERT_EMAILS") or []
        if not recipients:
            log.warning("Alert not mailed (ALERT_EMAILS is empty): %s", subject)
            return False
        window = max(1, int(current_app.config.get("ALERT_THROTTLE_SECONDS", 60)))
        count = _claim_window(throttle_key, window, subject, body)
        if count is None:
            return False
        return _mail(recipients, subject, body, count, window)
    except Exception:  # an alert must never take its caller down
        log.exception("Could not send the alert %r", subject)
        return False


def _claim_window(throttle_key, window, subject, body):
    """The number of occurrences this mail stands for, or None when it is suppressed."""
    try:
        redis = get_redis()
        pipe = redis.pipeline()
        pipe.incr(_key(throttle_key, "count"))
        pipe.expire(_key(throttle_key, "count"), window * 10)
        pipe.set(_key(throttle_key, "window"), "1", nx=True, ex=window)
        _, _, claimed = pipe.execute()
        if claimed:
            return int(redis.getset(_key(throttle_key, "count"), 0) or 1)
        # Suppressed: keep the latest details and make sure a summary follows the window.
        redis.set(
            _key(throttle_key, "last"),
            json.dumps({"subject": subject, "body": body}),
            ex=window * 10,
        )
        if redis.set(_key(throttle_key, "summary"), "1", nx=True, ex=window):
            _schedule_summary(throttle_key, redis.ttl(_key(throttle_key, "window")))
        return None
    except RedisError as error:
        log.warning("Redis unavailable for alert throttling, using this process's: %s", error)
        with _local_lock:
            last = _local_sent.get(throttle_key, 0.0)
            if time.monotonic() - last < window:
                return None
            _local_sent[throttle_key] = time.monotonic()
        return 1


def _schedule_summary(throttle_key, seconds_left):
    try:
        publish(SUMMARY_TASK, (throttle_key,), countdown=max(1, seconds_left) + 1)
    except Exception as error:  # broker down: the next mail still carries the count
        log.warning("Could not schedule the alert summary for %s: %s", throttle_key, error)


def _mail(recipients, subject, body, count, window):
    if count > 1:
        subject = f"{subject}（共 {count} 次）"
        body = f"自上一封提醒以来共发生 {count} 次（每 {window} 秒最多一封提醒邮件）。\n\n" + body
    try:
        send_mail(f"[路飞学城告警] {subject}", recipients, body)
    except Exception as error:
        log.error("Alert mail %r could not be sent: %s", subject, error)
        return False
    log.info("Alert mailed to %s: %s", ", ".join(recipients), subject)
    return True


def send_alert_summary(throttle_key):
    """Mail the occurrences counted while the window was closed (run when it has closed)."""
    try:
        redis = get_redis()
        window = max(1, int(current_app.config.get("ALERT_THROTTLE_SECONDS", 60)))
        redis.delete(_key(throttle_key, "summary"))
        if not int(redis.get(_key(throttle_key, "count")) or 0):
            return False
        if not redis.set(_key(throttle_key, "window"), "1", nx=True, ex=window):
            return False  # a newer mail already went out and carried the count
        count = int(redis.getset(_key(throttle_key, "count"), 0) or 0)
        last = json.loads(redis.get(_key(throttle_key, "last")) or "{}")
    except RedisError as error:
        log.warning("Could not read the alert counts for %s: %s", throttle_key, error)
        return False
    recipients = current_app.config.get("ALERT_EMAILS") or []
    if not count or not recipients:
        return False
    return _mail(recipients, last.get("subject", throttle_key), last.get("body", ""), count, window)
