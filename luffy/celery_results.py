"""Celery result backend storing into the application database (the ``task_results`` table).

The Flask counterpart of django-celery-results: ``result_backend =
"luffy.celery_results:DatabaseBackend"`` (the default, see config.py) keeps every result in
the table the admin shows. With ``result_extended`` it stores the task's name, args, kwargs,
worker, queue and retries; the periodic task's name comes from the ``periodic_task_name``
message header the beat scheduler sets; ``task_track_started`` fills
``started_at``. ``celery.backend_cleanup`` (which beat schedules daily when ``result_expires``
is set) deletes expired rows in batches, so a big table is never locked for long.

A task queued with a countdown or an eta also gets a PENDING row when it is published, so
the admin can see and revoke it before it runs.
"""

import logging
import os
import threading
from datetime import UTC, datetime, timedelta

from celery import states
from celery.backends.base import BaseBackend
from celery.result import result_from_tuple
from celery.signals import before_task_publish
from celery.utils.time import maybe_timedelta
from sqlalchemy import create_engine, delete, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from luffy.models.base import as_utc, utcnow
from luffy.models.task_result import TaskResult

log = logging.getLogger(__name__)

GROUP_TASK_NAME = "celery.group"
CLEANUP_BATCH_SIZE = 1000
# The expiry of a job kept "forever" (result_ttl=-1): the cleanup never reaches it.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


def job_expiry(request, state):
    """When the row of a job that just ended expires: its ``result_ttl`` (or ``failure_ttl``
    for a failure) from the ``luffy_job`` message header that luffy/jobs/ sets; None without."""
    options = getattr(request, "luffy_job", None) if request is not None else None
    if not isinstance(options, dict):
        return None
    ttl = options.get("failure_ttl" if state == states.FAILURE else "result_ttl")
    if ttl is None:
        return None
    return NEVER if ttl < 0 else utcnow() + timedelta(seconds=ttl)


class DatabaseBackend(BaseBackend):
    """Results in ``task_results``, through the database of the Flask app bound to Celery."""

    # ResultSet.iterate sleeps this long between rows: a poll is a query.
    subpolling_interval = 0.5
    # Nothing expires by itself: beat schedules celery.backend_cleanup.
    supports_autoexpire = False
    # Rows deleted per cleanup transaction: short locks on a big table.
    cleanup_batch_size = CLEANUP_BATCH_SIZE

    def __init__(self, app, url=None, **kwargs):
        super().__init__(app, expires_type=maybe_timedelta, url=url, **kwargs)
        conf = self.app.conf
        # A locked SQLite file or a dropped connection is worth a few retries.
        if not conf.value_set_for("result_backend_always_retry"):
            self.always_retry = True
        if not conf.value_set_for("result_backend_max_retries"):
            self.max_retries = 5
        self._engine = None
        self._engine_pid = None
        self._engine_lock = threading.Lock()

    # -- connection ------------------------------------------------------------------
    @property
    def database_url(self):
        flask_app = getattr(self.app, "flask_app", None)
        if flask_app is not None:
            return flask_app.config["SQLALCHEMY_DATABASE_URI"]
        return self.url or self.app.conf.database_url

    @property
    def engine(self):
        """One engine per process: a pool inherited across fork would share sockets."""
        if self._engine is None or self._engine_pid != os.getpid():
            with self._engine_lock:
                if self._engine is None or self._engine_pid != os.getpid():
                    options = {"pool_pre_ping": True}
                    flask_app = getattr(self.app, "flask_app", None)
                    if flask_app is not None:
                        options.update(flask_app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
                    self._engine = create_engine(self.database_url, **options)
                    self._engine_pid = os.getpid()
        return self._engine

    def as_uri(self, include_password=False):
        return "luffy.celery_results:DatabaseBackend"

    def exception_safe_to_retry(self, exc):
        return isinstance(exc, (OperationalError, IntegrityError, DBAPIError))

    # -- tasks -----------------------------------------------------------------------
    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request, format_date=False
        )
        with Session(self.engine) as session:
            row = session.scalar(select(TaskResult).where(TaskResult.task_id == task_id))
            if row is None:
                row = TaskResult(task_id=task_id, created_at=utcnow())
                session.add(row)
            elif row.state == states.SUCCESS:
                # A second delivery of a finished task never replaces its result.
                return
            row.state = state
            row.result = self.encode(result)
            row.traceback = traceback
            if state == states.STARTED and row.started_at is None:
                row.started_at = utcnow()
            if state in states.READY_STATES:
                row.date_done = utcnow()
                row.expires_at = job_expiry(request, state) or row.expires_at
            self._copy_request(row, meta, request)
            session.commit()

    def _copy_request(self, row, meta, request):
        """The extended fields (result_extended); a field the request lacks keeps its value."""
        if meta.get("name"):
            row.task_name = meta["name"]
        if meta.get("args") is not None:
            row.args = self.encode(list(meta["args"]))
        if meta.get("kwargs") is not None:
            row.kwargs = self.encode(meta["kwargs"])
        if meta.get("worker"):
            row.worker = meta["worker"]
        if meta.get("queue"):
            row.queue = meta["queue"]
        if meta.get("retries") is not None:
            row.retries = meta["retries"]
        periodic = getattr(request, "periodic_task_name", None) if request is not None else None
        if periodic:
            row.periodic_task_name = str(periodic)[:255]

    def _get_task_meta_for(self, task_id):
        with Session(self.engine) as session:
            row = session.scalar(select(TaskResult).where(TaskResult.task_id == task_id))
        if row is None:
            return self.meta_from_decoded(
                {"task_id": task_id, "status": states.PENDING, "result": None}
            )
        return self.meta_from_decoded(self._meta_of(row))

    def _meta_of(self, row):
        return {
            "task_id": row.task_id,
            "status": row.state,
            "result": self.decode(row.result) if row.result is not None else None,
            "traceback": row.traceback,
            "children": None,
            "date_done": as_utc(row.date_done),
            "name": row.task_name,
            "args": self.decode(row.args) if row.args else [],
            "kwargs": self.decode(row.kwargs) if row.kwargs else {},
            "worker": row.worker,
            "retries": row.retries,
            "queue": row.queue,
            "periodic_task_name": row.periodic_task_name,
        }

    def task_result_exists(self, task_id):
        def exists():
            with Session(self.engine) as session:
                found = session.scalar(select(TaskResult.id).where(TaskResult.task_id == task_id))
                return found is not None

        return self._ensure_retryable(exists)

    def _forget(self, task_id):
        with Session(self.engine) as session:
            session.execute(delete(TaskResult).where(TaskResult.task_id == task_id))
            session.commit()

    # -- groups (a group's member ids, so chords and GroupResult.restore work) --------
    def _save_group(self, group_id, result):
        payload = self.encode(self.prepare_value(result))
        with Session(self.engine) as session:
            row = session.scalar(select(TaskResult).where(TaskResult.task_id == group_id))
            if row is None:
                row = TaskResult(task_id=group_id, created_at=utcnow())
                session.add(row)
            row.task_name = GROUP_TASK_NAME
            row.state = states.SUCCESS
            row.result = payload
            row.date_done = utcnow()
            session.commit()
        return result

    def _restore_group(self, group_id):
        with Session(self.engine) as session:
            row = session.scalar(
                select(TaskResult).where(
                    TaskResult.task_id == group_id, TaskResult.task_name == GROUP_TASK_NAME
                )
            )
        if row is None:
            return None
        return {
            "group_id": group_id,
            "result": result_from_tuple(self.decode(row.result), self.app),
            "date_done": as_utc(row.date_done),
        }

    def _delete_group(self, group_id):
        self._forget(group_id)

    # -- the periodic cleanup ----------------------------------------------------------
    def cleanup(self):
        """Delete expired rows, ``cleanup_batch_size`` at a time, one short transaction each."""
        return self._ensure_retryable(self._cleanup)

    def _cleanup(self):
        if not self.expires:
            return 0
        now = utcnow()
        cutoff = now - self.expires
        # A job's own expiry (result_ttl/failure_ttl, luffy/jobs/) wins over result_expires.
        # Index range scans (by expires_at, by date_done, by created_at) rather than one OR
        # that would read the whole table.
        unset = TaskResult.expires_at.is_(None)
        deleted = self._delete_batches(TaskResult.expires_at < now)
        deleted += self._delete_batches(unset & (TaskResult.date_done < cutoff))
        deleted += self._delete_batches(
            unset & TaskResult.date_done.is_(None) & (TaskResult.created_at < cutoff)
        )
        if deleted:
            log.info("Removed %d expired task results.", deleted)
        return deleted

    def _delete_batches(self, expired):
        """Delete the rows matching ``expired``, ``cleanup_batch_size`` per transaction, so
        writers wait for one short batch at most."""
        deleted = 0
        while True:
            with Session(self.engine) as session:
                ids = session.scalars(
                    select(TaskResult.id).where(expired).limit(self.cleanup_batch_size)
                ).all()
                if not ids:
                    break
                session.execute(delete(TaskResult).where(TaskResult.id.in_(ids)))
                session.commit()
            deleted += len(ids)
            if len(ids) < self.cleanup_batch_size:
                break
        return deleted

    # -- delayed tasks -----------------------------------------------------------------
    def record_pending(self, task_id, name, args, kwargs, queue):
        """A PENDING row for a task queued to run later (eta/countdown)."""
        with Session(self.engine) as session:
            if session.scalar(select(TaskResult.id).where(TaskResult.task_id == task_id)):
                return
            session.add(
                TaskResult(
                    task_id=task_id,
                    task_name=name,
                    state=states.PENDING,
                    created_at=utcnow(),
                    args=self.encode(list(args)),
                    kwargs=self.encode(kwargs),
                    queue=queue,
                    retries=0,
                )
            )
            session.commit()

    def __reduce__(self, args=(), kwargs=None):
        return super().__reduce__(args, {**(kwargs or {}), "url": self.url})


@before_task_publish.connect(dispatch_uid="luffy.celery_results.record_delayed")
def record_delayed_task(sender=None, body=None, headers=None, routing_key=None, **extra):
    """Give a task sent with an eta a PENDING row (first delivery only, not retries)."""
    if not headers or not headers.get("eta") or headers.get("retries"):
        return
    from celery import current_app
    from flask import current_app as flask_app
    from flask import has_app_context

    try:
        celery_app = flask_app.extensions["celery"] if has_app_context() else current_app
        if not isinstance(celery_app.backend, DatabaseBackend):
            return
        args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) else ([], {})
        celery_app.backend.record_pending(
            headers["id"], headers.get("task"), args, kwargs, routing_key
        )
    except Exception:  # never stop the task from being sent
        log.warning("Could not record the delayed task %s", headers.get("id"), exc_info=True)
