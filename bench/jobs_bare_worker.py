"""The worker app of ``tasks`` without the jobs layer's worker hooks: bench/jobs.py's baseline."""

from celery import signals

from tasks.celery import app  # noqa: F401  (the same app as `celery -A tasks`)

signals.task_postrun.disconnect(dispatch_uid="luffy.jobs.worker.job_ended")
signals.task_revoked.disconnect(dispatch_uid="luffy.jobs.worker.job_revoked")
signals.worker_ready.disconnect(dispatch_uid="luffy.jobs.worker.load_canceled")
