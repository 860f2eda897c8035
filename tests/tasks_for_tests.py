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
