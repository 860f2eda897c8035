"""The task bench/beat.py schedules (loaded by its worker through CELERY_EXTRA_IMPORTS)."""

import time

from celery import shared_task

from luffy.redis_store import get_redis


@shared_task(name="bench.beat.probe", ignore_result=True)
def probe(tag):
    """Record when the run with ``tag`` happened (the first time only)."""
    get_redis().set(f"luffy:bench:beat:{tag}", f"{time.time():.6f}", nx=True)
