"""Which task ids the application issued, and the state of one.

``AsyncResult(any_id).state`` is PENDING for ids that never existed (a status route trusting it
would poll for ever), so every publish writes a job record, ``luffy:job:<id>``
(luffy/jobs/records.py), kept for ``result_expires``. An id is known when that record exists or the
result backend has a row for it (a row outlives a lost Redis key). The answer adds the job's status
in RQ's words and its progress (``meta["progress"]``, which a job reports with ``save_meta()``).
"""

import logging

from celery import current_app as current_celery
from celery import states
from flask import current_app, has_app_context
from redis.exceptions import RedisError

from luffy.jobs import records
from luffy.jobs.job import Job
from luffy.jobs.model import result_row as job_row
from luffy.redis_store import get_redis
from luffy.responses import ApiError

log = logging.getLogger(__name__)

MAX_TASK_ID_LENGTH = 155


def _celery():
    if has_app_context() and "celery" in current_app.extensions:
        return current_app.extensions["celery"]
    return current_celery._get_current_object()


def task_was_issued(task_id) -> bool:
    """True when this application sent ``task_id`` (within ``result_expires``)."""
    if not task_id or len(task_id) > MAX_TASK_ID_LENGTH:
        return False
    redis_error = None
    try:
        if records.exists(task_id, get_redis()):
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


def _outcome(job, state):
    """The result as the route shows it: a return value, or an error as "Type: message"."""
    if state == states.SUCCESS:
        return job.result
    if state in states.EXCEPTION_STATES and job.row and job.row.get("result"):
        backend = _celery().backend
        return backend.exception_to_python(backend.decode(job.row["result"]))
    return None


def task_status(task_id) -> dict:
    """``{"task_id", "state", "status", "progress", "result"}`` for an issued id; raises
    ApiError(404) for any other."""
    if not task_was_issued(task_id):
        raise ApiError(404, "任务不存在")
    job = Job(task_id)
    try:
        job.refresh()
    except RedisError:  # the record is gone with Redis; the result row still answers
        job._record, job._row = {}, job_row(task_id)
    try:
        state = job.row["state"] if job.row else states.PENDING
        value = _outcome(job, state)
        progress = job.meta.get("progress")
    except Exception as error:
        log.warning("Could not read the state of task %s: %s", task_id, error)
        raise ApiError(503, "任务状态暂时无法查询，请稍后再试") from error
    return {
        "task_id": task_id,
        "state": state,
        "status": job.get_status(refresh=False),
        "progress": progress if isinstance(progress, dict) else None,
        "result": _public_result(value, state),
    }
