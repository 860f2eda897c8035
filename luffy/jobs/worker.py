"""The worker's side of jobs: retries with RQ's interval list, per-job TTLs, releasing the
dependents of a job that ended, and canceled jobs dropped by workers that start later."""

import logging

from celery import signals, states
from celery.exceptions import TaskPredicate
from redis.exceptions import RedisError

from luffy.jobs import dependencies, records

log = logging.getLogger(__name__)


def run_with_retry(task, retry, call, args, kwargs):
    """``call(*args, **kwargs)``; on an error, Celery's retry after the job's next interval
    until ``retry["max"]`` retries were made (then the job fails with that error)."""
    try:
        return call(*args, **kwargs)
    except TaskPredicate:  # Retry, Ignore, Reject: Celery's own flow
        raise
    except Exception as error:
        attempt = task.request.retries or 0
        if attempt >= retry["max"]:
            raise
        intervals = retry["intervals"]
        wait = intervals[min(attempt, len(intervals) - 1)]
        log.info(
            "Job %s failed (%r); retry %d of %d in %ss.",
            task.request.id,
            error,
            attempt + 1,
            retry["max"],
            wait,
        )
        raise task.retry(exc=error, countdown=wait, max_retries=retry["max"]) from error


def _job_options(task):
    options = getattr(task.request, "luffy_job", None) if task is not None else None
    return options if isinstance(options, dict) else {}


@signals.task_postrun.connect(dispatch_uid="luffy.jobs.worker.job_ended")
def job_ended(sender=None, task_id=None, task=None, state=None, **extra):
    """A run ended: apply the job's TTL to its record and look at the jobs waiting for it."""
    if state not in states.READY_STATES or not task_id:
        return
    try:
        options = _job_options(task)
        ttl = options.get("failure_ttl" if state == states.FAILURE else "result_ttl")
        # One round trip: the record's new expiry and the jobs waiting for this one.
        pipe = records.redis_client().pipeline(transaction=False)
        if ttl is not None:
            records.set_expiry(task_id, ttl, redis=pipe)
        pipe.smembers(records.DEPENDENTS_KEY.format(task_id))
        children = pipe.execute()[-1]
        for child in children:
            dependencies.evaluate(child.decode())
    except (RedisError, RuntimeError) as error:
        log.warning("Dependents of job %s not looked at: %s", task_id, error)


@signals.task_revoked.connect(dispatch_uid="luffy.jobs.worker.job_revoked")
def job_revoked(sender=None, request=None, **extra):
    """A revoked job was dropped: the jobs waiting for it are canceled."""
    task_id = getattr(request, "id", None)
    if not task_id:
        return
    try:
        dependencies.on_parent_end(task_id)
    except (RedisError, RuntimeError) as error:
        log.warning("Dependents of revoked job %s not looked at: %s", task_id, error)


@signals.worker_ready.connect(dispatch_uid="luffy.jobs.worker.load_canceled")
def load_canceled(sender=None, **extra):
    """Add the jobs canceled while this worker was away to its revoked ids: a revoke is a
    broadcast, heard only by the workers running when it was sent."""
    from celery.worker import state

    try:
        celery_app = sender.app
        redis = celery_app.flask_app.extensions["luffy_redis"]
        ids = redis.zrangebyscore(records.CANCELED_KEY, "-inf", "+inf")
    except (AttributeError, KeyError, RedisError) as error:
        log.warning("Canceled jobs not loaded: %s", error)
        return
    for task_id in ids:
        state.revoked.add(task_id.decode())
    if ids:
        log.info("%d canceled job(s) will be dropped if delivered.", len(ids))
