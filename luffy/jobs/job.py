"""The Job handle: ``Job.fetch(id)``, ``get_status()``, ``result``, ``meta``/``save_meta()``
and the operations RQ offers on a job: ``cancel()``, ``requeue()``, ``delete()``."""

import time

from celery import current_task

from luffy.broker import quick_connection
from luffy.jobs import dependencies, records, sending
from luffy.jobs.errors import InvalidJobState
from luffy.jobs.model import (
    CANCELED,
    DEFERRED,
    FAILED,
    QUEUED,
    SCHEDULED,
    STARTED,
    BaseJob,
    celery_app,
)

CANCELABLE = (QUEUED, SCHEDULED, DEFERRED)
REQUEUEABLE = (FAILED,)


def revoke(task_id):
    """Tell the workers to drop ``task_id``, and remember it for workers that start later."""
    app = celery_app()
    now = time.time()
    pipe = records.redis_client().pipeline()
    pipe.zadd(records.CANCELED_KEY, {task_id: now})
    pipe.zremrangebyscore(records.CANCELED_KEY, "-inf", now - records.record_ttl(app))
    pipe.execute()
    with quick_connection() as connection:
        app.control.revoke(task_id, connection=connection)


class Job(BaseJob):
    """A job by id, with RQ's operations."""

    def cancel(self):
        """Cancel a queued, scheduled or deferred job: it will never run."""
        status = self.get_status()
        if status not in CANCELABLE:
            raise InvalidJobState(
                f"job {self.id} is {status}: only a queued, scheduled or deferred job "
                "can be canceled"
            )
        if status == DEFERRED:
            dependencies.cancel_deferred(self.id, "canceled")
            return
        revoke(self.id)
        records.update(self.id, status=CANCELED, reason="canceled")
        celery_app().backend.mark_as_revoked(self.id, "canceled", request=self.request_context())
        dependencies.on_parent_end(self.id)

    def requeue(self):
        """Run a failed job again: the same id, function, arguments and options."""
        status = self.get_status()
        if status not in REQUEUEABLE:
            raise InvalidJobState(f"job {self.id} is {status}: only a failed job can be requeued")
        name, args, kwargs, queue = self.func_name, self.args, self.kwargs, self.origin
        send = {"queue": queue or None}
        options = self.options
        if options:
            send["headers"] = {"luffy_job": options}
        if options.get("timeout"):
            send.update(soft_time_limit=options["timeout"], time_limit=options["timeout"] + 10)
        celery_app().backend.forget(self.id)  # a fresh row: queued, then its new outcome
        sending.send_job(celery_app(), name, args, kwargs, send, self.id)
        return self.refresh()

    def delete(self):
        """Forget the job: its record, its result and its place in the registries. A queued,
        scheduled or deferred job is canceled first; a running job is refused."""
        status = self.get_status()
        if status == STARTED:
            raise InvalidJobState(f"job {self.id} is running: it cannot be deleted now")
        if status in CANCELABLE:
            self.cancel()
        queue = self.origin
        celery_app().backend.forget(self.id)
        pipe = records.redis_client().pipeline()
        pipe.delete(records.JOB_KEY.format(self.id), records.DEPENDENTS_KEY.format(self.id))
        pipe.zrem(records.DEFERRED_KEY.format(queue), self.id)
        pipe.execute()


def get_current_job():
    """Inside a running job (any task), its Job; None elsewhere."""
    task = current_task
    if task is None or not task.request or not task.request.id or task.request.is_eager:
        return None
    return Job(task.request.id)
