"""Tasks only the test workers load (through CELERY_EXTRA_IMPORTS): failures and slow effects.

Their effects go to Redis db 0 under ``luffy:test:`` so the suite's cleanup removes them.
"""

import os
import time

from celery import shared_task

from luffy.redis_store import get_redis


@shared_task(name="tests.fails")
def fails(tag, **details):
    """Always raises, so the failure alert has something to report."""
    raise RuntimeError(f"boom {tag}")


@shared_task(name="tests.effect_once", bind=True)
def effect_once(self, key, seconds=0.0):
    """Counts every run, works ``seconds``, then applies its effect once per task id.

    The effect is keyed on the task id (SET NX), the way a real task makes a redelivery
    harmless: ``runs`` may exceed one, ``effects`` never does.
    """
    redis = get_redis()
    redis.incr(f"luffy:test:{key}:runs")
    redis.set(f"luffy:test:{key}:pid", os.getpid())
    time.sleep(seconds)
    if redis.set(f"luffy:test:{key}:done:{self.request.id}", "1", nx=True):
        redis.incr(f"luffy:test:{key}:effects")
    return key


@shared_task(name="tests.notify_success", notify_on_success=True)
def notify_success(x):
    """Opted in to success notices."""
    return x * 2


@shared_task(name="tests.flaky", bind=True)
def flaky(self, key, failures):
    """Fails its first ``failures`` runs, noting the time of every run, then returns the run."""
    redis = get_redis()
    redis.rpush(f"luffy:test:{key}:times", repr(time.time()))
    run = redis.incr(f"luffy:test:{key}:runs")
    if run <= failures:
        raise RuntimeError(f"flaky run {run}")
    return run


@shared_task(name="tests.record_call")
def record_call(key, *args, **kwargs):
    """Notes each call's arguments (as JSON) under ``luffy:test:<key>:calls``; returns them."""
    import json

    get_redis().rpush(f"luffy:test:{key}:calls", json.dumps([args, kwargs], ensure_ascii=False))
    return [list(args), kwargs]


@shared_task(name="tests.report_progress")
def report_progress(key, steps, pause):
    """Reports ``{"done", "total"}`` progress through its job's meta, a step at a time."""
    from luffy.jobs import get_current_job

    job = get_current_job()
    for done in range(1, steps + 1):
        time.sleep(pause)
        job.meta["progress"] = {"done": done, "total": steps}
        job.save_meta()
    return steps
