"""Registries per queue, from what Celery and the database really hold.

============  ============================================================================
queued        messages waiting in the broker (Redis: LLEN, and LRANGE of one page; RabbitMQ:
              a passive declare's count, listed only through the management API)
scheduled     ``task_results`` rows PENDING (an eta/countdown job, recorded when it is sent)
              or RETRY (waiting for its next try); the workers hold their messages
started       STARTED rows (``task_track_started``)
finished      SUCCESS rows
failed        FAILURE rows
canceled      REVOKED rows (canceled jobs, and running jobs that were stopped)
deferred      ``luffy:jobs:deferred:<queue>``: jobs waiting for their dependencies
============  ============================================================================

Every list is one page: a registry with 100,000 entries costs what its page costs.
"""

from celery import states
from flask import current_app
from sqlalchemy import func, select

from luffy.extensions import db
from luffy.jobs import broker_queues, records
from luffy.jobs.model import BaseJob, status_of
from luffy.models import TaskResult

QUEUED, SCHEDULED, STARTED, DEFERRED = "queued", "scheduled", "started", "deferred"
FINISHED, FAILED, CANCELED = "finished", "failed", "canceled"
REGISTRIES = (QUEUED, SCHEDULED, STARTED, DEFERRED, FINISHED, FAILED, CANCELED)
STATES_OF = {
    SCHEDULED: (states.PENDING, states.RETRY),
    STARTED: (states.STARTED,),
    FINISHED: (states.SUCCESS,),
    FAILED: (states.FAILURE,),
    CANCELED: (states.REVOKED,),
}
PER_PAGE = 50
MAX_PER_PAGE = 200


def queue_names():
    """Every queue Celery is configured with, in its order."""
    celery_app = current_app.extensions["celery"]
    names = [queue.name for queue in celery_app.conf.task_queues or ()]
    return names or [celery_app.conf.task_default_queue]


def row_counts():
    """{queue: {registry: n}} for the database registries, in one GROUP BY."""
    counts = {}
    registry_of = {state: name for name, group in STATES_OF.items() for state in group}
    rows = db.session.execute(
        select(TaskResult.queue, TaskResult.state, func.count())
        .where(TaskResult.state.in_(list(registry_of)))
        .group_by(TaskResult.queue, TaskResult.state)
    ).all()
    for queue, state, count in rows:
        per_queue = counts.setdefault(queue or "", {})
        per_queue[registry_of[state]] = per_queue.get(registry_of[state], 0) + count
    return counts


def deferred_counts(names):
    pipe = records.redis_client().pipeline(transaction=False)
    for name in names:
        pipe.zcard(records.DEFERRED_KEY.format(name))
    return dict(zip(names, pipe.execute(), strict=True))


def overview():
    """Every queue with its waiting messages, consumers and registry counts."""
    names = queue_names()
    lengths = broker_queues.lengths(names)
    rows = row_counts()
    deferred = deferred_counts(names)
    queues = []
    for name in names:
        counts = {registry: 0 for registry in REGISTRIES}
        counts.update(rows.get(name, {}))
        counts[QUEUED] = lengths[name]["messages"]
        counts[DEFERRED] = deferred[name]
        queues.append({"name": name, "consumers": lengths[name]["consumers"], "counts": counts})
    return queues


def page_bounds(page, per_page=PER_PAGE):
    page = max(1, int(page or 1))
    per_page = min(MAX_PER_PAGE, max(1, int(per_page or PER_PAGE)))
    return page, per_page, (page - 1) * per_page


def list_jobs(queue, registry, page=1, per_page=PER_PAGE):
    """One page of a registry: {"jobs": [...], "total", "page", "per_page", "note"}."""
    if registry not in REGISTRIES:
        raise ValueError(f"no registry {registry!r}")
    page, per_page, offset = page_bounds(page, per_page)
    note = None
    if registry == QUEUED:
        total, jobs, note = broker_queues.waiting(queue, offset, per_page)
    elif registry == DEFERRED:
        total, jobs = _deferred(queue, offset, per_page)
    else:
        total, jobs = _rows(queue, STATES_OF[registry], offset, per_page)
    return {"jobs": jobs, "total": total, "page": page, "per_page": per_page, "note": note}


def _deferred(queue, offset, limit):
    redis = records.redis_client()
    key = records.DEFERRED_KEY.format(queue)
    ids = [item.decode() for item in redis.zrange(key, offset, offset + limit - 1)]
    return redis.zcard(key), [entry_of(BaseJob(job_id).refresh()) for job_id in ids]


def _rows(queue, wanted, offset, limit):
    where = (TaskResult.queue == queue, TaskResult.state.in_(wanted))
    total = db.session.scalar(select(func.count()).select_from(TaskResult).where(*where))
    ids = db.session.scalars(
        select(TaskResult.task_id)
        .where(*where)
        .order_by(TaskResult.created_at.desc(), TaskResult.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    pipe = records.redis_client().pipeline(transaction=False)
    for task_id in ids:
        pipe.hgetall(records.JOB_KEY.format(task_id))
    found = pipe.execute()
    rows = {
        row.task_id: row
        for row in db.session.scalars(select(TaskResult).where(TaskResult.task_id.in_(ids)))
    }
    jobs = []
    for task_id, raw in zip(ids, found, strict=True):
        if task_id not in rows:  # deleted between the two queries
            continue
        job = BaseJob(task_id)
        job._record = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        job._row = _row_dict(rows[task_id])
        job._loaded = True
        jobs.append(entry_of(job))
    return total, jobs


def _row_dict(row):
    return {column.name: getattr(row, column.name) for column in TaskResult.__table__.columns}


def _text(value, limit=300):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_of(job):
    """What a registry list shows of a job."""
    exc = job.exc_info
    result = job.result
    return {
        "id": job.id,
        "func": job.func_name,
        "args": _text(job.args_text),
        "status": status_of(job.record, job.row),
        "description": job.options.get("description") or "",
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "eta": records.parse_eta(job.record.get("eta")),
        "worker": job.worker_name or "",
        "result": "" if result is None else _text(result),
        "exc": _text(exc.strip().splitlines()[-1]) if exc else "",
        "depends_on": job.dependency_ids,
    }


def ids_in(queue, registry, limit=10_000):
    """The ids of a database registry of ``queue`` (for "requeue all"), at most ``limit``."""
    return db.session.scalars(
        select(TaskResult.task_id)
        .where(TaskResult.queue == queue, TaskResult.state.in_(STATES_OF[registry]))
        .order_by(TaskResult.id)
        .limit(limit)
    ).all()
