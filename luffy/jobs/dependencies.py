"""``depends_on``: a job waits (deferred) until all its parents finish, and is canceled when
one of them fails or is canceled.

A deferred job is only a record (luffy/jobs/records.py) with its call and publish options,
listed in ``luffy:jobs:deferred:<queue>`` and in each parent's ``luffy:job:<id>:dependents``.
Whoever sees a parent end looks at its dependents: the worker that ran it (a task signal,
luffy/jobs/worker.py), or ``enqueue`` itself when the parents had already ended. Releasing
is claimed once (HSETNX), so two parents ending together send the job once.
"""

import logging
import time

from luffy.jobs import records, sending
from luffy.jobs.errors import NoSuchJobError
from luffy.jobs.model import (
    CANCELED,
    DEFERRED,
    FAILED,
    FINISHED,
    STOPPED,
    BaseJob,
    result_row,
    status_of,
)

log = logging.getLogger(__name__)

ENDED_BADLY = (FAILED, CANCELED, STOPPED)


def defer(celery_app, name, args, kwargs, send, parents, job_id, meta=None):
    """Record a job that runs once ``parents`` (job ids) have all finished; returns its id."""
    for parent in parents:
        if not BaseJob.exists(parent):
            raise NoSuchJobError(f"depends_on: no job with id {parent}")
    queue = sending.routed_queue(celery_app, name, send.get("queue"))
    stored = sending.stored_options(send)
    fields = {
        "name": name,
        "queue": queue,
        "enqueued_at": repr(time.time()),
        "args": records.dumps(list(args)),
        "kwargs": records.dumps(kwargs),
        "status": DEFERRED,
        "depends_on": records.dumps(list(parents)),
        "send": records.dumps(stored),
    }
    header = (stored.get("headers") or {}).get("luffy_job")
    if header:
        fields["options"] = records.dumps(header)
    if meta:
        fields["meta"] = records.dumps(meta)
    ttl = records.record_ttl(celery_app)
    pipe = records.redis_client().pipeline()
    pipe.hset(records.JOB_KEY.format(job_id), mapping=fields)
    pipe.expire(records.JOB_KEY.format(job_id), ttl)
    pipe.zadd(records.DEFERRED_KEY.format(queue), {job_id: time.time()})
    for parent in parents:
        pipe.sadd(records.DEPENDENTS_KEY.format(parent), job_id)
        pipe.expire(records.DEPENDENTS_KEY.format(parent), ttl)
    pipe.execute()
    evaluate(job_id)  # parents that already ended release or cancel it now
    return job_id


def evaluate(job_id):
    """Release the deferred job when every parent finished; cancel it when one ended badly."""
    record = records.load(job_id)
    if record.get("status") != DEFERRED:
        return
    statuses = {}
    for parent in records.loads(record.get("depends_on"), []):
        parent_record = records.load(parent)
        row = result_row(parent)
        statuses[parent] = status_of(parent_record, row) if parent_record or row else CANCELED
    bad = [parent for parent, status in statuses.items() if status in ENDED_BADLY]
    if bad:
        cancel_deferred(job_id, f"dependency {bad[0]} is {statuses[bad[0]]}")
    elif all(status == FINISHED for status in statuses.values()):
        release(job_id, record)


def release(job_id, record):
    """Send a deferred job whose parents all finished (once, whoever calls it)."""
    redis = records.redis_client()
    key = records.JOB_KEY.format(job_id)
    if not redis.hsetnx(key, "released", "1"):
        return
    try:
        sending.send_job(
            records.celery_app(),
            record["name"],
            records.loads(record.get("args"), []),
            records.loads(record.get("kwargs"), {}),
            records.loads(record.get("send"), {}),
            job_id,
        )
    except Exception:
        redis.hdel(key, "released")  # let the next look try again
        raise
    redis.zrem(records.DEFERRED_KEY.format(record.get("queue")), job_id)
    log.info("Released job %s: its dependencies finished.", job_id)


def cancel_deferred(job_id, reason):
    """Cancel a job that was never sent, and, in turn, the jobs waiting for it."""
    job = BaseJob(job_id)
    redis = records.redis_client()
    pipe = redis.pipeline()
    pipe.hset(records.JOB_KEY.format(job_id), mapping={"status": CANCELED, "reason": reason})
    pipe.zrem(records.DEFERRED_KEY.format(job.origin), job_id)
    pipe.execute()
    records.celery_app().backend.mark_as_revoked(job_id, reason, request=job.request_context())
    log.info("Canceled job %s: %s.", job_id, reason)
    on_parent_end(job_id)


def on_parent_end(parent_id):
    """A job ended: look at each job waiting for it."""
    children = records.redis_client().smembers(records.DEPENDENTS_KEY.format(parent_id))
    for child in children:
        evaluate(child.decode())
