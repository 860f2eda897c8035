"""Luffy's task class (Flask app context, alert hooks) vs a bare Celery app, same broker, one run.

    .venv/bin/python bench/tasks.py        (or `make bench`)

Starts a private Redis (broker on db 1, the bare app's results on db 2) and a migrated SQLite
database, starts three real workers (`celery worker -c 2`, prefork, the same Celery settings
from config.py), each on its own queue: the bare app, Luffy with Redis results, Luffy with its
default database results; and measures:

* throughput: 5,000 no-op tasks (ignore_result) are queued while the worker's consumer is
  paused, then it resumes; tasks/s from resuming until the queue and the unacked set are empty;
  three rounds, alternating bare and Luffy, median of each;
* publish rate: `.delay()` calls per second while queueing them (Luffy records each issued id);
* round trip: median of 200 sequential `.delay(x).get()` calls after a warm-up, for Luffy with
  its default database result backend and with the same Redis result backend as the bare app.

The headline is Luffy's throughput over the bare app's (target >= 0.9).
"""

import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BIN, ROOT, Environment  # noqa: E402

TASKS = 5000
ROUND_TRIPS = 200
ROUNDS = 3
TARGET = 0.9


class Worker:
    """``celery -A <app> worker -c 2 -Q <queue>`` until stopped."""

    def __init__(self, app_module, queue, env):
        self.queue = queue
        self.hostname = f"{queue}-{uuid.uuid4().hex[:6]}@{os.uname().nodename}"
        self.process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                app_module,
                "worker",
                "-c",
                "2",
                "-Q",
                queue,
                "-n",
                self.hostname,
                "-l",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, celery_app):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if celery_app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise RuntimeError(f"worker {self.hostname} did not answer")

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


def throughput(celery_app, worker, noop, broker):
    """(tasks/s through the worker, .delay() calls/s) for TASKS no-op tasks."""
    destination = [worker.hostname]
    celery_app.control.cancel_consumer(worker.queue, destination=destination, reply=True, timeout=5)
    started = time.perf_counter()
    with celery_app.producer_or_acquire() as producer:
        for _ in range(TASKS):
            noop.apply_async(queue=worker.queue, producer=producer)
    publish_rate = TASKS / (time.perf_counter() - started)
    assert broker.llen(worker.queue) == TASKS, broker.llen(worker.queue)
    started = time.perf_counter()
    celery_app.control.add_consumer(worker.queue, destination=destination, reply=True, timeout=5)
    while broker.llen(worker.queue) or broker.hlen("unacked"):  # acks_late: done when acked
        time.sleep(0.005)
    return TASKS / (time.perf_counter() - started), publish_rate


def round_trip_ms(echo, queue):
    def once(i):
        assert echo.apply_async((i,), queue=queue).get(timeout=30, interval=0.005) == i

    for i in range(20):
        once(i)
    samples = []
    for i in range(ROUND_TRIPS):
        started = time.perf_counter()
        once(i)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def luffy_celery(result_backend):
    """Luffy's Celery app as the web app builds it; ``None`` keeps the database result backend."""
    from config import DevelopmentConfig
    from luffy import create_app

    if result_backend:
        os.environ["CELERY_RESULT_BACKEND"] = result_backend
    else:
        os.environ.pop("CELERY_RESULT_BACKEND", None)
    flask_app = create_app(DevelopmentConfig)
    return flask_app, flask_app.extensions["celery"]


def main():
    import redis

    environment = Environment()
    workers = []
    try:
        redis_url = f"redis://127.0.0.1:{environment.redis_port}"
        redis_results = f"{redis_url}/2"
        env = {
            **environment.env,
            "BARE_RESULT_BACKEND": redis_results,
            "CELERY_EXTRA_IMPORTS": "bench.luffy_tasks",
        }
        os.environ.update(env)
        broker = redis.Redis.from_url(f"{redis_url}/1")
        import bare_celery

        bare = Worker("bench.bare_celery", "bench-bare", env)
        luffy = Worker("tasks", "bench-luffy", {**env, "CELERY_RESULT_BACKEND": redis_results})
        luffy_db = Worker("tasks", "bench-luffy-db", env)
        workers = [bare, luffy, luffy_db]
        for worker in workers:
            worker.wait_ready(bare_celery.app)

        # The bare app first, before luffy is imported: Luffy's publish hooks are global.
        bare_latency = round_trip_ms(bare_celery.echo, bare.queue)
        bare_rounds = [throughput(bare_celery.app, bare, bare_celery.noop, broker)]

        import luffy_tasks  # noqa: F401  (registers bench.luffy.* on Luffy's apps)

        db_app, db_celery = luffy_celery(None)
        with db_app.app_context():
            luffy_latency_db = round_trip_ms(db_celery.tasks["bench.luffy.echo"], luffy_db.queue)
        flask_app, celery_app = luffy_celery(redis_results)
        noop = celery_app.tasks["bench.luffy.noop"]
        with flask_app.app_context():
            luffy_latency = round_trip_ms(celery_app.tasks["bench.luffy.echo"], luffy.queue)
            luffy_rounds = [throughput(celery_app, luffy, noop, broker)]
            for _ in range(ROUNDS - 1):  # alternate, so machine load hits both alike
                bare_rounds.append(throughput(bare_celery.app, bare, bare_celery.noop, broker))
                luffy_rounds.append(throughput(celery_app, luffy, noop, broker))

        bare_tps = statistics.median(r[0] for r in bare_rounds)
        luffy_tps = statistics.median(r[0] for r in luffy_rounds)
        bare_publish, luffy_publish = bare_rounds[0][1], luffy_rounds[0][1]
        print(f"bare_celery_throughput: {bare_tps:.0f} tasks/s (median of {ROUNDS})")
        print(f"luffy_task_throughput: {luffy_tps:.0f} tasks/s (median of {ROUNDS})")
        print(f"bare_celery_publish: {bare_publish:.0f} delay/s")
        print(f"luffy_publish: {luffy_publish:.0f} delay/s (records each issued id in Redis)")
        print(f"bare_celery_round_trip: {bare_latency:.2f} ms")
        print(f"luffy_round_trip_redis_results: {luffy_latency:.2f} ms")
        print(f"luffy_round_trip_database_results: {luffy_latency_db:.2f} ms")
        print(f"publish_vs_bare: {luffy_publish / bare_publish:.2f} x")
        print(f"round_trip_vs_bare: {luffy_latency / bare_latency:.2f} x (time; lower is better)")
        ratio = luffy_tps / bare_tps
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(
            f"headline: Luffy task throughput = {ratio:.2f}x bare Celery "
            f"(target >= {TARGET}x) {verdict}"
        )
    finally:
        for worker in workers:
            worker.stop()
        environment.close()


if __name__ == "__main__":
    main()
