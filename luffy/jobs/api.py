"""Enqueueing, RQ style: ``Queue("default").enqueue(add, 2, 3)``, ``enqueue_in``, ``enqueue_at``.

A job is a Celery task message: the options RQ keeps in its job hash travel in the message
(Celery's own ``time_limit``/``soft_time_limit``, ``eta``, ``task_id``) or in one custom
header, ``luffy_job``, that the worker reads (retry, result and failure TTLs). A job with
``depends_on`` is not sent: its record waits in the deferred registry until its parents end
(luffy/jobs/dependencies.py).
"""

from datetime import UTC, datetime, timedelta

from celery.utils import uuid
from flask import current_app

from luffy.jobs import dependencies, functions, records, sending
from luffy.jobs.errors import JobError, JobExists
from luffy.jobs.job import Job

# Keyword arguments enqueue keeps for itself; every other keyword goes to the function.
OPTION_NAMES = (
    "job_id",
    "job_timeout",
    "result_ttl",
    "failure_ttl",
    "retry",
    "depends_on",
    "description",
    "meta",
    "args",
    "kwargs",
)
MAX_TTL = 10 * 365 * 86400


class Retry:
    """Run a failed job again, at most ``max`` times, waiting ``interval`` seconds before each
    try: one number, or a list whose n-th item is the wait before the n-th retry (the last
    item repeats)."""

    def __init__(self, max, interval=0):
        intervals = list(interval) if isinstance(interval, (list, tuple)) else [interval]
        if not isinstance(max, int) or isinstance(max, bool) or max < 1:
            raise JobError("Retry(max): max must be a whole number of at least 1")
        if not intervals or any(
            not isinstance(i, (int, float)) or isinstance(i, bool) or i < 0 for i in intervals
        ):
            raise JobError("Retry(interval): every interval must be a number of seconds >= 0")
        self.max = max
        self.intervals = intervals

    def header(self):
        return {"max": self.max, "intervals": self.intervals}


def _ttl(name, value):
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = int(value.total_seconds())
    if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= MAX_TTL:
        raise JobError(f"{name} must be a whole number of seconds from -1 (forever) up")
    return value


def _timeout(value):
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise JobError("job_timeout must be a positive number of seconds")
    return float(value)


def job_header(options):
    """The ``luffy_job`` header: only what the worker needs, only when given."""
    header = {}
    for name in ("result_ttl", "failure_ttl"):
        value = _ttl(name, options.get(name))
        if value is not None:
            header[name] = value
    if options.get("retry") is not None:
        retry = options["retry"]
        if not isinstance(retry, Retry):
            raise JobError("retry must be a Retry(max, interval=[...])")
        header["retry"] = retry.header()
    if options.get("description"):
        header["description"] = str(options["description"])[:500]
    return header


def _as_ids(depends_on):
    if depends_on is None:
        return []
    items = depends_on if isinstance(depends_on, (list, tuple, set)) else [depends_on]
    return [item.id if isinstance(item, Job) else str(item) for item in items]


class Queue:
    """A named Celery queue with RQ's enqueueing calls (``None``: the task's routed queue)."""

    def __init__(self, name=None):
        self.name = name or None

    def __repr__(self):
        return f"Queue({self.name!r})"

    def enqueue(self, func, *args, **kwargs):
        """Queue ``func(*args, **kwargs)`` now; returns its Job."""
        return self._enqueue(func, args, kwargs, eta=None)

    def enqueue_in(self, delay, func, *args, **kwargs):
        """Queue ``func`` to run after ``delay`` (a timedelta or seconds)."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise JobError("the delay must be zero or more seconds")
        eta = datetime.now(UTC) + timedelta(seconds=seconds)
        return self._enqueue(func, args, kwargs, eta=eta)

    def enqueue_at(self, when, func, *args, **kwargs):
        """Queue ``func`` to run at ``when`` (an aware datetime; a naive one is refused)."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise JobError("enqueue_at needs a datetime with a time zone")
        return self._enqueue(func, args, kwargs, eta=when.astimezone(UTC))

    def _enqueue(self, func, args, kwargs, eta):
        options = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
        args = tuple(options.get("args") or args)
        kwargs = dict(options.get("kwargs") or kwargs)
        celery_app = current_app.extensions["celery"]
        name = functions.resolve(celery_app, func, current_app.config["JOBS_PACKAGES"])
        header = job_header(options)
        send = {"queue": self.name, "eta": eta}
        timeout = _timeout(options.get("job_timeout"))
        if timeout:
            # The soft limit raises in the job (it fails, or retries); the hard one kills it.
            send.update(soft_time_limit=timeout, time_limit=timeout + 10)
            header["timeout"] = timeout
        if header:
            send["headers"] = {"luffy_job": header}
        job_id = options.get("job_id")
        if job_id is not None:
            job_id = claim_job_id(job_id)
        parents = _as_ids(options.get("depends_on"))
        meta = options.get("meta")
        claimed, job_id = job_id is not None, job_id or uuid()
        try:
            if parents:
                dependencies.defer(celery_app, name, args, kwargs, send, parents, job_id, meta)
            else:
                sending.send_job(celery_app, name, args, kwargs, send, job_id, meta=meta)
        except Exception:
            if claimed:  # nothing was sent: the id is free again
                records.redis_client().delete(records.JOB_KEY.format(job_id))
            raise
        return Job(job_id)


def claim_job_id(job_id):
    """Take ``job_id`` for a new job, or raise JobExists: ids are unique, like RQ's."""
    job_id = str(job_id).strip()
    if not job_id or len(job_id) > 155 or not all(c.isalnum() or c in "-_.:" for c in job_id):
        raise JobError("job_id must be 1 to 155 letters, digits, '-', '_', '.' or ':'")
    redis = records.redis_client()
    if not redis.hsetnx(records.JOB_KEY.format(job_id), "name", ""):
        state = Job(job_id).get_status() if records.load(job_id, redis).get("name") else "new"
        raise JobExists(f"a job with id {job_id} already exists ({state})")
    redis.expire(records.JOB_KEY.format(job_id), records.record_ttl())
    return job_id


def enqueue(func, *args, **kwargs):
    """Queue ``func`` on its routed queue (``Queue().enqueue``)."""
    return Queue().enqueue(func, *args, **kwargs)


def enqueue_in(delay, func, *args, **kwargs):
    return Queue().enqueue_in(delay, func, *args, **kwargs)


def enqueue_at(when, func, *args, **kwargs):
    return Queue().enqueue_at(when, func, *args, **kwargs)


__all__ = ["JobExists", "Queue", "Retry", "enqueue", "enqueue_at", "enqueue_in"]
