"""Jobs: what the RQ-style layer costs over plain Celery, measured as ratios in one run.

1. enqueue() of a trivial job against a bare ``.delay()`` of the same task (both publish to
   the private Redis): the median time of one call, over JOBS_BENCH_CALLS x JOBS_BENCH_ROUNDS
   calls of each, the two alternating so both meet the same load. Target <= 1.2x.
2. Opening a registry list (the queued registry's first and a deep page, and the admin page
   through the Flask test client) with 100,000 messages waiting. Target < 1 s.
3. Worker throughput: a worker with the job layer running jobs sent with ``enqueue`` (retry,
   result_ttl and description set), against a worker whose job hooks are disconnected running
   the same task sent with ``.delay()``; jobs per second from the first publish to the last
   result row, interleaved rounds, medians. Target >= 0.9x.

Run: .venv/bin/python bench/jobs.py
"""

import base64
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BIN, ROOT, Environment  # noqa: E402

CALLS = int(os.environ.get("JOBS_BENCH_CALLS", "2000"))
ROUNDS = int(os.environ.get("JOBS_BENCH_ROUNDS", "5"))
WAITING = 100_000
THROUGHPUT_JOBS = int(os.environ.get("JOBS_BENCH_THROUGHPUT_JOBS", "600"))
# The results table lives here when the server answers (a fresh database per run): two worker
# processes writing rows at once wait on SQLite's single writer lock, which swamps what the
# job layer costs. Set it to "" to stay on SQLite.
POSTGRES = os.environ.get("JOBS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def use_postgres(environment):
    """Move the run's database to a fresh PostgreSQL database; returns its name or None."""
    if not POSTGRES:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from config import sqlalchemy_url

    server = make_url(sqlalchemy_url(POSTGRES))
    name = f"luffy_bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as error:  # no server: SQLite it is
        print(f"# PostgreSQL not used ({type(error).__name__}); results in SQLite")
        return None
    url = server.set(database=name).render_as_string(hide_password=False)
    environment.env["DATABASE_URL"] = url
    os.environ["DATABASE_URL"] = url
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=environment.env,
        check=True,
        capture_output=True,
    )
    return server, name


def drop_postgres(created):
    if not created:
        return
    from sqlalchemy import create_engine, text

    server, name = created
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def enqueue_cost(app, celery_app):
    """Median time of one ``.delay()`` and of one ``enqueue()``, the two calls alternating
    (in turn first) so both meet the same load on a shared machine."""
    from luffy.jobs import Queue
    from tasks.user import add

    queue = Queue("bench-enqueue")
    calls = {
        "delay": lambda i: add.apply_async((i, i), queue="bench-enqueue"),
        "enqueue": lambda i: queue.enqueue(add, i, i),
    }
    times = {"delay": [], "enqueue": []}
    with app.app_context():
        for i in range(300):  # warm-up
            calls["delay"](i)
            calls["enqueue"](i)
        for i in range(CALLS * ROUNDS):
            order = ("delay", "enqueue") if i % 2 else ("enqueue", "delay")
            for name in order:
                started = time.perf_counter()
                calls[name](i)
                times[name].append(time.perf_counter() - started)
        celery_app.connection_for_write().default_channel.client.delete("bench-enqueue")
    return statistics.median(times["delay"]), statistics.median(times["enqueue"])


def fill_queue(celery_app, app, queue, count):
    """``count`` real task messages in ``queue``: one published, the rest copies (new ids)."""
    from luffy.jobs import Queue

    with app.app_context():
        Queue(queue).enqueue("tasks.user.add", 1, 2)
    client = celery_app.connection_for_write().default_channel.client
    template = json.loads(client.lindex(queue, 0))
    pipe = client.pipeline(transaction=False)
    for n in range(count - 1):
        message = dict(template, headers=dict(template["headers"], id=str(uuid.uuid4())))
        message["properties"] = dict(template["properties"], delivery_tag=str(uuid.uuid4()))
        message["body"] = base64.b64encode(json.dumps([[n, n], {}, {}]).encode()).decode()
        pipe.lpush(queue, json.dumps(message))
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    return client.llen(queue)


def timed(fn, repeats=5):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def registry_cost(app, celery_app):
    from luffy.jobs import registries

    queue = "bench-registry"
    waiting = fill_queue(celery_app, app, queue, WAITING)
    client = admin_client(app)
    with app.app_context():
        first = timed(lambda: registries.list_jobs(queue, "queued", page=1))
        deep = timed(lambda: registries.list_jobs(queue, "queued", page=1500))
        overview = timed(registries.overview)
    url = f"/admin/jobs/queue/{queue}/queued/?page=1000"
    answer = client.get(url)
    if answer.status_code != 200 or "共 100000 个" not in answer.get_data(as_text=True):
        raise RuntimeError(f"the admin page did not list the queue: {answer.status_code}")
    page = timed(lambda: client.get(url))
    celery_app.connection_for_write().default_channel.client.delete(queue)
    return waiting, first, deep, overview, page


def admin_client(app):
    from luffy.extensions import db
    from luffy.models import User

    with app.app_context():
        user = User(username="bench-admin", is_admin=True)
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
        user_id = user.id
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    return client


def start_worker(entry, env, queue):
    argv = [
        str(BIN / "celery"),
        "-A",
        entry,
        "worker",
        "-c",
        "2",
        "-Q",
        queue,
        "-l",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"bench-{uuid.uuid4().hex[:6]}@%h",
    ]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_ready(celery_app, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if celery_app.control.ping(timeout=0.5):
            return
    raise RuntimeError("the bench worker did not answer")


def done_rows(app, ids):
    from sqlalchemy import func, select

    from luffy.extensions import db
    from luffy.models import TaskResult

    with app.app_context():
        return db.session.scalar(
            select(func.count()).where(TaskResult.task_id.in_(ids), TaskResult.state == "SUCCESS")
        )


def group_cpu_seconds(pgid):
    """User + system CPU seconds of every live process in process group ``pgid``."""
    total, ticks = 0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def throughput(app, celery_app, env, with_layer):
    """(jobs per second, worker CPU seconds per job) for one round."""
    from luffy.jobs import Queue, Retry
    from tasks.user import add

    queue = f"bench-tp-{uuid.uuid4().hex[:6]}"
    entry = "tasks" if with_layer else "bench.jobs_bare_worker"
    process = start_worker(entry, env, queue)
    try:
        wait_ready(celery_app, process)
        cpu_before = group_cpu_seconds(process.pid)
        started = time.perf_counter()
        with app.app_context():
            if with_layer:
                ids = [
                    Queue(queue)
                    .enqueue(
                        add, i, i, retry=Retry(2, interval=[1]), result_ttl=600, description="bench"
                    )
                    .id
                    for i in range(THROUGHPUT_JOBS)
                ]
            else:
                ids = [add.apply_async((i, i), queue=queue).id for i in range(THROUGHPUT_JOBS)]
        while done_rows(app, ids) < len(ids):
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = group_cpu_seconds(process.pid) - cpu_before
        return len(ids) / elapsed, cpu / len(ids)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def main():
    environment = Environment()
    environment.env["WORKER_STATE_DB"] = "off"
    created = use_postgres(environment)
    print(f"# database: {'PostgreSQL' if created else 'SQLite'}")
    try:
        from tasks.celery import app as celery_app
        from tasks.celery import flask_app as app

        delay, enqueue = enqueue_cost(app, celery_app)
        print(f"delay_per_call: {delay * 1e6:.0f} us")
        print(f"enqueue_per_call: {enqueue * 1e6:.0f} us")
        print(f"enqueue_vs_delay: {enqueue / delay:.2f} x")
        waiting, first, deep, overview, page = registry_cost(app, celery_app)
        print(f"messages_waiting: {waiting} messages")
        print(f"registry_first_page: {first * 1000:.1f} ms")
        print(f"registry_page_1500: {deep * 1000:.1f} ms")
        print(f"registry_overview: {overview * 1000:.1f} ms")
        print(f"admin_registry_page_1000: {page * 1000:.1f} ms")
        bare, layer = [], []
        for _ in range(ROUNDS):
            bare.append(throughput(app, celery_app, environment.env, with_layer=False))
            layer.append(throughput(app, celery_app, environment.env, with_layer=True))
        bare_rate = statistics.median(rate for rate, _ in bare)
        layer_rate = statistics.median(rate for rate, _ in layer)
        bare_cpu = statistics.median(cpu for _, cpu in bare)
        layer_cpu = statistics.median(cpu for _, cpu in layer)
        print(f"worker_without_layer: {bare_rate:.0f} jobs/s")
        print(f"worker_with_layer: {layer_rate:.0f} jobs/s")
        print(f"worker_cpu_per_job_without_layer: {bare_cpu * 1000:.2f} ms")
        print(f"worker_cpu_per_job_with_layer: {layer_cpu * 1000:.2f} ms")
        print(f"worker_with_vs_without: {layer_rate / bare_rate:.2f} x")
        print(f"worker_cpu_without_vs_with: {bare_cpu / layer_cpu:.2f} x")
        print(
            f"jobs headline: enqueue {enqueue / delay:.2f}x delay; registry page "
            f"{max(first, deep, page) * 1000:.0f} ms with {waiting} waiting; worker "
            f"{layer_rate / bare_rate:.2f}x"
        )
    finally:
        environment.close()
        drop_postgres(created)


if __name__ == "__main__":
    main()
