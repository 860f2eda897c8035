"""The task the beat tests schedule: records each run, with the header beat sent, in Redis.

Loaded by the beat tests' own worker (CELERY_EXTRA_IMPORTS) and by the test process, so the
admin offers it as a registered task name.
"""

import json
import time

from celery import shared_task

from luffy.redis_store import get_redis


@shared_task(name="tests.beat_probe", bind=True)
def beat_probe(self, tag):
    """Append {"at", "periodic_task_name", "id"} to ``luffy:test:beat:<tag>``."""
    get_redis().rpush(
        f"luffy:test:beat:{tag}",
        json.dumps(
            {
                "at": time.time(),
                "periodic_task_name": getattr(self.request, "periodic_task_name", None),
                "id": self.request.id,
            }
        ),
    )
    return tag
