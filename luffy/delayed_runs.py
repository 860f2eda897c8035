"""Run a delayed task (eta/countdown) once, although the Redis broker may deliver it twice.

The Redis transport delivers an unacknowledged message again after ``visibility_timeout``
(default one hour): a task due later than that is then held twice and would run twice. Each
delivery of a delayed task first claims ``luffy:task:delayed:<id>:<retries>`` in Redis:

* claimed: run, then mark the claim done;
* done: a duplicate of a run that finished, skipped;
* running: another copy runs right now, or a run was killed and its claim has not expired
  yet: look again later (a crashed run's claim expires, so it is redone, not lost).
"""

import logging

from celery.exceptions import Ignore
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY = "luffy:task:delayed:{id}:{retries}"
DONE = b"done"
# A copy that finds the run claimed looks again this often until the claim is done or gone.
RECHECK_SECONDS = 30


def _redis(task):
    return task.app.flask_app.extensions["luffy_redis"]


def _claim_seconds(task):
    limit = task.time_limit or task.app.conf.task_time_limit or 3600
    return int(limit) + 60


def _key(task):
    return KEY.format(id=task.request.id, retries=task.request.retries or 0)


def claim(task):
    """Claim this delayed run, or raise Ignore when another delivery owns it."""
    try:
        redis = _redis(task)
        key = _key(task)
        if redis.set(key, "running", nx=True, ex=_claim_seconds(task)):
            return
        state = redis.get(key)
        seconds_left = redis.ttl(key)
    except RedisError as error:
        log.warning(
            "Redis unavailable, running delayed task %s unguarded: %s", task.request.id, error
        )
        return
    if state == DONE:
        log.info("Skipped a second delivery of delayed task %s[%s].", task.name, task.request.id)
        raise Ignore()
    log.info(
        "Delayed task %s[%s] is claimed by another run; checking again in %ss.",
        task.name,
        task.request.id,
        seconds_left,
    )
    queue = (task.request.delivery_info or {}).get("routing_key")
    task.apply_async(
        task.request.args,
        task.request.kwargs,
        task_id=task.request.id,
        countdown=min(max(1, seconds_left), RECHECK_SECONDS) + 1,
        queue=queue,
        headers=_headers_to_keep(task),
    )
    raise Ignore()


def _headers_to_keep(task):
    periodic = getattr(task.request, "periodic_task_name", None)
    return {"periodic_task_name": periodic} if periodic else None


def finish(task):
    """Mark the claimed run finished, so later duplicates are skipped."""
    try:
        expires = task.app.conf.result_expires
        seconds = int(expires.total_seconds()) if expires else 7 * 86400
        _redis(task).set(_key(task), DONE, ex=seconds)
    except RedisError as error:
        log.warning("Could not mark delayed task %s done: %s", task.request.id, error)
