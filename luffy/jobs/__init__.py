"""Jobs, RQ style, on Celery: enqueue a function, hold a Job handle, browse the registries.

    from luffy.jobs import Queue, Retry, enqueue, get_current_job

    job = enqueue("tasks.user.add", 2, 3, result_ttl=600, retry=Retry(3, interval=[1, 5, 30]))
    job.get_status()  # "queued", then "started", "finished"

See docs/jobs.md for every call and how RQ's words map to Celery's.
"""

from luffy.jobs.api import Queue, Retry, enqueue, enqueue_at, enqueue_in
from luffy.jobs.errors import InvalidJobState, JobError, JobExists, NoSuchJobError
from luffy.jobs.job import Job, get_current_job


def init_app(app):
    """``flask jobs`` commands."""
    from luffy.jobs.cli import jobs_cli

    app.cli.add_command(jobs_cli)


__all__ = [
    "InvalidJobState",
    "Job",
    "JobError",
    "JobExists",
    "NoSuchJobError",
    "Queue",
    "Retry",
    "enqueue",
    "enqueue_at",
    "enqueue_in",
    "get_current_job",
    "init_app",
]
