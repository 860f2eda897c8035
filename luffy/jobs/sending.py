"""Publishing a job's message: one place for ``enqueue``, a released dependent and requeue."""

from datetime import datetime

from luffy.jobs import records


def send_options(send):
    """Celery's publish options from the stored form (an eta kept as ISO text)."""
    options = {key: value for key, value in send.items() if value is not None}
    if isinstance(options.get("eta"), str):
        options["eta"] = datetime.fromisoformat(options["eta"])
    return options


def stored_options(send):
    """The publish options as JSON can keep them (for a deferred job or a requeue)."""
    stored = {key: value for key, value in send.items() if value is not None}
    if isinstance(stored.get("eta"), datetime):
        stored["eta"] = stored["eta"].isoformat()
    return stored


def send_job(celery_app, name, args, kwargs, send, job_id, meta=None):
    """Publish the job (the publish handler writes its record); returns its id."""
    if meta:
        records.update(job_id, meta=records.dumps(meta))
    celery_app.send_task(name, args, kwargs, task_id=job_id, **send_options(send))
    return job_id


def routed_queue(celery_app, name, queue=None):
    """The queue a message for task ``name`` goes to (``queue`` or the task's route)."""
    if queue:
        return queue
    route = celery_app.amqp.router.route({}, name)
    found = route.get("queue")
    return getattr(found, "name", found) or celery_app.conf.task_default_queue
