"""The job record in Redis: ``luffy:job:<id>``, a hash written when a task is published.

Every task the application sends (``enqueue``, ``.delay()``, beat, the admin's run-now) gets
one from a ``before_task_publish`` handler, in the same round trip that used to note the id
as issued: its name, queue, when it was enqueued, its arguments as text and, for jobs sent
through luffy/jobs/, their options (the ``luffy_job`` message header), description and meta.
A job waiting for its parents (deferred) has only this record until it is released.

Results, start and end times and the worker stay where Celery puts them (the result backend,
luffy/celery_results.py); Job (luffy/jobs/job.py) reads both.
"""

import json
import logging
import time
from datetime import UTC, datetime

from celery import current_app as current_celery
from celery.signals import before_task_publish
from flask import current_app, has_app_context
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

JOB_KEY = "luffy:job:{}"
DEPENDENTS_KEY = "luffy:job:{}:dependents"
# Deferred job ids per queue, scored by when they were enqueued (the deferred registry).
DEFERRED_KEY = "luffy:jobs:deferred:{}"
# Canceled job ids (scored by time): a worker that starts later drops their messages too.
CANCELED_KEY = "luffy:jobs:canceled"
DEFAULT_TTL = 7 * 86400
# Arguments longer than this (as text) are cut in the record; the message keeps them whole.
REPR_LIMIT = 1024


def celery_app():
    if has_app_context() and "celery" in current_app.extensions:
        return current_app.extensions["celery"]
    return current_celery._get_current_object()


def redis_client(celery=None):
    """The application's Redis (db 0), from the Flask app or the Celery app's Flask app."""
    if has_app_context():
        return current_app.extensions["luffy_redis"]
    flask_app = getattr(celery or celery_app(), "flask_app", None)
    if flask_app is None:
        raise RuntimeError("no Flask app: import tasks (or build the app) before using jobs")
    return flask_app.extensions["luffy_redis"]


def record_ttl(celery=None):
    expires = (celery or celery_app()).conf.result_expires
    return int(expires.total_seconds()) if expires else DEFAULT_TTL


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def published_fields(headers, routing_key):
    """The record's fields for a message about to be published."""
    fields = {
        "name": headers.get("task") or "",
        "queue": routing_key or "",
        "enqueued_at": repr(time.time()),
        "argsrepr": (headers.get("argsrepr") or "")[:REPR_LIMIT],
        "kwargsrepr": (headers.get("kwargsrepr") or "")[:REPR_LIMIT],
    }
    if headers.get("eta"):
        fields["eta"] = headers["eta"]
    options = headers.get("luffy_job")
    if isinstance(options, dict):
        fields["options"] = dumps(options)
    return fields


@before_task_publish.connect(dispatch_uid="luffy.jobs.records.record_published")
def record_published(sender=None, headers=None, routing_key=None, **extra):
    """Write the job record of every task this process sends (web, workers and beat alike)."""
    headers = headers or {}
    task_id = headers.get("id")
    if not task_id:
        return
    try:
        celery = celery_app()
        redis = redis_client(celery)
    except (RuntimeError, KeyError):  # a process without the Flask app: nothing to write to
        return
    key = JOB_KEY.format(task_id)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(key, mapping=published_fields(headers, routing_key))
        if not headers.get("retries"):
            # A retry keeps the first enqueue time, meta and status of its job.
            pipe.hdel(key, "status", "ended_at")
        pipe.expire(key, record_ttl(celery))
        pipe.execute()
    except RedisError as error:  # the task is still sent; its result row will vouch for it
        log.warning("Could not record job %s: %s", task_id, error)


def load(task_id, redis=None):
    """The record of ``task_id`` as a dict of text values ({} when there is none)."""
    raw = (redis or redis_client()).hgetall(JOB_KEY.format(task_id))
    return {key.decode(): value.decode("utf-8", "replace") for key, value in raw.items()}


def exists(task_id, redis=None):
    return bool((redis or redis_client()).exists(JOB_KEY.format(task_id)))


def update(task_id, redis=None, **fields):
    (redis or redis_client()).hset(JOB_KEY.format(task_id), mapping=fields)


def loads(text, default=None):
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def parse_eta(text):
    """An eta from a message header or a record (ISO text) as an aware datetime, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def set_expiry(task_id, seconds, redis=None):
    """Keep the record ``seconds`` more (forever when negative)."""
    redis = redis or redis_client()
    key = JOB_KEY.format(task_id)
    if seconds < 0:
        redis.persist(key)
    else:
        redis.expire(key, max(1, int(seconds)))
