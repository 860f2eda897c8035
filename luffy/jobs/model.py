"""What a job is: one model of "a job" for everything the workers run.

Built from the job record in Redis (luffy/jobs/records.py) and the task's row in the result
backend (``task_results``): a task sent with ``.delay()``, by beat or from the admin is a job
as much as one sent with ``enqueue``. Statuses use RQ's words (see ``STATUS_OF_STATE``).
"""

import json
from datetime import UTC, datetime

from celery import states
from celery.app.task import Context
from sqlalchemy import select

from luffy.jobs import records
from luffy.jobs.errors import NoSuchJobError
from luffy.models import TaskResult
from luffy.models.base import as_utc

QUEUED, SCHEDULED, DEFERRED, STARTED = "queued", "scheduled", "deferred", "started"
FINISHED, FAILED, CANCELED, STOPPED = "finished", "failed", "canceled", "stopped"
STATUSES = (QUEUED, SCHEDULED, DEFERRED, STARTED, FINISHED, FAILED, CANCELED, STOPPED)
# Celery's state of a row -> RQ's status (PENDING and REVOKED depend on more, see status()).
STATUS_OF_STATE = {
    states.RECEIVED: QUEUED,
    states.STARTED: STARTED,
    states.RETRY: SCHEDULED,
    states.SUCCESS: FINISHED,
    states.FAILURE: FAILED,
}
ID_LIMIT = 155


celery_app = records.celery_app


def result_row(task_id):
    """The task's row in ``task_results`` as a dict, or None (read on a fresh connection, so a
    caller polling in a loop sees every commit)."""
    backend = celery_app().backend
    if not hasattr(backend, "engine"):
        meta = backend.get_task_meta(task_id)
        if meta.get("status") == states.PENDING:
            return None
        return {
            "state": meta["status"],
            "result": meta.get("result"),
            "decoded": True,
            "traceback": meta.get("traceback"),
            "date_done": meta.get("date_done"),
            "task_name": meta.get("name"),
            "worker": meta.get("worker"),
            "queue": meta.get("queue"),
            "args": meta.get("args"),
            "kwargs": meta.get("kwargs"),
        }
    with backend.engine.connect() as connection:
        row = (
            connection.execute(select(TaskResult.__table__).where(TaskResult.task_id == task_id))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def _json(text, default):
    if isinstance(text, (list, dict)):
        return text
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def status_of(record, row, now=None):
    """RQ's word for a job from its record and its result row."""
    marked = record.get("status")
    state = row["state"] if row else None
    if marked == CANCELED or state == states.REVOKED:
        return STOPPED if row and row.get("started_at") and marked != CANCELED else CANCELED
    if marked == DEFERRED:
        return DEFERRED
    if state in STATUS_OF_STATE:
        return STATUS_OF_STATE[state]
    eta = record.get("eta")
    if eta:
        try:
            if datetime.fromisoformat(eta).astimezone(UTC) > (now or datetime.now(UTC)):
                return SCHEDULED
        except ValueError:
            pass
    return QUEUED


class BaseJob:
    """A job by id as it stands: status, call, times, result and meta (read side)."""

    def __init__(self, job_id):
        self.id = job_id
        self._record = None
        self._row = None
        self._loaded = False

    def __repr__(self):
        return f"Job({self.id!r})"

    # -- loading -----------------------------------------------------------------------
    @classmethod
    def fetch(cls, job_id):
        """The job ``job_id``; NoSuchJobError when no record or result row has it."""
        if not isinstance(job_id, str) or not job_id or len(job_id) > ID_LIMIT:
            raise NoSuchJobError(f"no job with id {job_id!r}")
        job = cls(job_id)
        job.refresh()
        if not job._record.get("name") and job._row is None:
            raise NoSuchJobError(f"no job with id {job_id}")
        return job

    @classmethod
    def exists(cls, job_id):
        try:
            cls.fetch(job_id)
        except NoSuchJobError:
            return False
        return True

    def refresh(self):
        self._record = records.load(self.id)
        self._row = result_row(self.id)
        self._loaded = True
        return self

    def _ensure(self):
        if not self._loaded:
            self.refresh()

    @property
    def record(self):
        self._ensure()
        return self._record

    @property
    def row(self):
        self._ensure()
        return self._row

    # -- what it is ----------------------------------------------------------------------
    def get_status(self, refresh=True):
        if refresh:
            self.refresh()
        return status_of(self.record, self.row)

    @property
    def func_name(self):
        return self.record.get("name") or (self.row or {}).get("task_name") or ""

    @property
    def origin(self):
        """The queue the job was sent to."""
        return self.record.get("queue") or (self.row or {}).get("queue") or ""

    @property
    def args(self):
        if self.row and self.row.get("args"):
            return list(_json(self.row["args"], []))
        return list(_json(self.record.get("args"), []))

    @property
    def kwargs(self):
        if self.row and self.row.get("kwargs"):
            return dict(_json(self.row["kwargs"], {}))
        return dict(_json(self.record.get("kwargs"), {}))

    @property
    def args_text(self):
        """The call's arguments as readable text (Unicode kept, not escaped)."""
        args, kwargs = self.args, self.kwargs
        if not args and not kwargs and self.record.get("argsrepr"):
            kwargs_text = self.record.get("kwargsrepr") or "{}"
            return f"{self.record['argsrepr']} {kwargs_text if kwargs_text != '{}' else ''}".strip()
        parts = [json.dumps(a, ensure_ascii=False, default=str) for a in args]
        parts += [
            f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in kwargs.items()
        ]
        return ", ".join(parts)

    @property
    def options(self):
        return _json(self.record.get("options"), {})

    @property
    def description(self):
        return self.options.get("description") or f"{self.func_name}({self.args_text})"

    @property
    def enqueued_at(self):
        stamp = self.record.get("enqueued_at")
        if stamp:
            return datetime.fromtimestamp(float(stamp), UTC)
        return as_utc((self.row or {}).get("created_at"))

    @property
    def started_at(self):
        return as_utc((self.row or {}).get("started_at"))

    @property
    def ended_at(self):
        return as_utc((self.row or {}).get("date_done"))

    @property
    def worker_name(self):
        return (self.row or {}).get("worker")

    @property
    def dependency_ids(self):
        return list(_json(self.record.get("depends_on"), []))

    # -- outcome -------------------------------------------------------------------------
    def _decoded_result(self):
        row = self.row or {}
        if row.get("decoded"):
            return row.get("result")
        backend = celery_app().backend
        return backend.decode(row["result"]) if row.get("result") else None

    @property
    def result(self):
        """The return value of a finished job (None otherwise)."""
        if not self.row or self.row["state"] != states.SUCCESS:
            return None
        return self._decoded_result()

    return_value = result

    @property
    def exc_info(self):
        """The traceback of a failed job (the error text when there is no traceback)."""
        if not self.row or self.row["state"] not in states.EXCEPTION_STATES:
            return None
        if self.row.get("traceback"):
            return self.row["traceback"]
        error = self._decoded_result()
        if isinstance(error, dict) and "exc_type" in error:
            return f"{error['exc_type']}: {error.get('exc_message')}"
        return None if error is None else str(error)

    # -- meta ----------------------------------------------------------------------------
    @property
    def meta(self):
        if not hasattr(self, "_meta"):
            self._meta = dict(_json(self.record.get("meta"), {}))
        return self._meta

    def save_meta(self):
        """Store ``meta`` in the job record (readable at once, also while the job runs)."""
        records.update(self.id, meta=records.dumps(self.meta))

    def get_meta(self, refresh=True):
        if refresh:
            self.refresh()
            self.__dict__.pop("_meta", None)
        return self.meta

    def request_context(self):
        """What a backend write needs to keep the job's name, arguments and queue."""
        return Context(
            task=self.func_name,
            args=self.args,
            kwargs=self.kwargs,
            delivery_info={"routing_key": self.origin},
        )
