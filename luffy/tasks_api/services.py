"""Which task ids the application issued, and the state of one.

``AsyncResult(any_id).state`` is PENDING for ids that never existed (PITFALLS 2), so every
publish records its id: a ``before_task_publish`` handler writes
``luffy:task:issued:<id>`` with a TTL of ``result_expires``. An id is known when that key
exists or the result backend has a row for it (a row outlives a lost Redis key).
"""

import logging

from celery import current_app as current_celery
from celery import states
from celery.result import AsyncResult
from celery.signals import before_task_publish
from flask import current_app, has_app_context
from redis.exceptions import RedisError

from luffy.redis_store import get_redis
from luffy.responses import ApiError

log = logging.getLogger(__name__)

ISSUED_KEY = "luffy:task:issued:{}"
MAX_TASK_ID_LENGTH = 155
DEFAULT_TTL = 7 * 86400


def _celery():
    if has_app_context() and "celery" in current_app.extensions:
        return current_app.extensions["celery"]
    return current_celery._get_current_object()


def _issued_ttl(celery_app):
    expires = celery_app.conf.result_expires
    return int(expires.total_seconds()) if expires else DEFAULT_TTL


@before_task_publish.connect(dispatch_uid="luffy.tasks_api.record_issued")
def record_issued_task(sender=None, headers=None, **extra):
    """Note the id of every task this process sends (the web app, workers and beat alike)."""
    task_id = (headers or {}).get("id")
    if not task_id:
        return
    try:
        celery_app = _celery()
        flask_app = current_app if has_app_context() else getattr(celery_app, "flask_app", None)
        if flask_app is None:
            return
        redis = flask_app.extensions["luffy_redis"]
        redis.set(ISSUED_KEY.format(task_id), "1", ex=_issued_ttl(celery_app))
    except RedisError as error:  # the task is still sent; its row will vouch for it later
        log.warning("Could not record issued task %s: %s", task_id, error)


def task_was_issued(task_id) -> bool:
    """True when this application sent ``task_id`` (within ``result_expires``)."""
    if not task_id or len(task_id) > MAX_TASK_ID_LENGTH:
        return False
    redis_error = None
    try:
        if get_redis().exists(ISSUED_KEY.format(task_id)):
            return True
    except RedisError as error:
        redis_error = error
    try:
        if _celery().backend.task_result_exists(task_id):
            return True
    except Exception as error:  # a backend outage is not a "no"
        log.warning("Could not look up task %s in the result backend: %s", task_id, error)
        raise ApiError(503, "任务状态暂时无法查询，请稍后再试") from error
    if redis_error is not None:
        raise ApiError(503, "任务状态暂时无法查询，请稍后再试") from redis_error
    return False


def _public_result(result, state):
    """The result as JSON can carry it; an exception as ``"Type: message"``, no traceback."""
    if state in states.EXCEPTION_STATES or isinstance(result, BaseException):
        if isinstance(result, BaseException):
            return f"{type(result).__name__}: {result}"
        return None if result is None else str(result)
    if result is None or isinstance(result, (str, int, float, bool, list, dict)):
        return result
    return repr(result)


def task_status(task_id) -> dict:
    """``{"task_id", "state", "result"}`` for an issued id; raises ApiError(404) for any other."""
    if not task_was_issued(task_id):
        raise ApiError(404, "任务不存在")
    result = AsyncResult(task_id, app=_celery())
    try:
        state = result.state
        value = result.result if state in states.READY_STATES else None
    except Exception as error:
        log.warning("Could not read the state of task %s: %s", task_id, error)
        raise ApiError(503, "任务状态暂时无法查询，请稍后再试") from error
    return {"task_id": task_id, "state": state, "result": _public_result(value, state)}
