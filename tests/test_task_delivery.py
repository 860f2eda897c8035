"""At-least-once delivery made safe: long delays, killed workers, and effects that happen once."""

import os
import signal
import time

import pytest
from conftest import start_worker, stop_worker

redis_broker_only = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
    reason="the visibility timeout is the Redis transport's (RabbitMQ redelivers on disconnect)",
)


def counter(redis_client, key, name):
    return int(redis_client.get(f"luffy:test:{key}:{name}") or 0)


def wait_until(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


@redis_broker_only
def test_a_delay_longer_than_the_visibility_timeout_runs_once(app, redis_client):
    """Visibility timeout 2 s, countdown 8 s: Redis hands the message out again (several
    times) while the worker holds it; the task still runs exactly once, when due."""
    queue = "visibility-test"
    process = start_worker(app, "-c", "2", "-Q", queue, env={"CELERY_VISIBILITY_TIMEOUT": "2"})
    try:
        celery_app = app.extensions["celery"]
        queued_at = time.monotonic()
        result = celery_app.send_task(
            "tests.effect_once", args=["late", 0.5], countdown=8, queue=queue
        )
        assert result.get(timeout=60) == "late"
        assert time.monotonic() - queued_at >= 7.5  # not early
        time.sleep(4)  # room for any duplicate delivery to run
        assert counter(redis_client, "late", "runs") == 1
        assert counter(redis_client, "late", "effects") == 1
        log = process.log_path.read_text(errors="replace")
        # The duplicates really happened (else this test would prove nothing)...
        assert log.count(f"Task tests.effect_once[{result.id}] received") >= 2, log[-3000:]
    finally:
        stop_worker(process)


def test_a_killed_worker_process_runs_the_late_ack_task_again_with_one_effect(app, redis_client):
    """SIGKILL the pool process mid-task (what the OOM killer does): with acks_late and
    task_reject_on_worker_lost the message goes back to the queue and runs again."""
    queue = "sigkill-test"
    process = start_worker(app, "-c", "1", "-Q", queue)
    try:
        celery_app = app.extensions["celery"]
        result = celery_app.send_task("tests.effect_once", args=["killed", 3], queue=queue)
        wait_until(lambda: counter(redis_client, "killed", "runs") == 1, 30, "task never started")
        child = int(redis_client.get("luffy:test:killed:pid"))
        assert child != process.pid
        os.kill(child, signal.SIGKILL)
        assert result.get(timeout=60) == "killed"
        assert counter(redis_client, "killed", "runs") == 2  # it ran again...
        assert counter(redis_client, "killed", "effects") == 1  # ...and its effect happened once
    finally:
        stop_worker(process)


def test_a_whole_worker_killed_mid_task_hands_the_task_to_another(app, redis_client):
    """SIGKILL the whole worker (no chance to requeue): the unacked message comes back after
    the visibility timeout and a second worker finishes it, with one effect."""
    queue = "sigkill-all-test"
    env = {"CELERY_VISIBILITY_TIMEOUT": "3"}
    first = start_worker(app, "-c", "1", "-Q", queue, env=env)
    try:
        result = app.extensions["celery"].send_task(
            "tests.effect_once", args=["orphan", 2], queue=queue
        )
        wait_until(lambda: counter(redis_client, "orphan", "runs") == 1, 30, "task never started")
    finally:
        stop_worker(first, sig=signal.SIGKILL)
    second = start_worker(app, "-c", "1", "-Q", queue, env=env)
    try:
        assert result.get(timeout=60) == "orphan"
        assert counter(redis_client, "orphan", "runs") >= 2
        assert counter(redis_client, "orphan", "effects") == 1
    finally:
        stop_worker(second)
