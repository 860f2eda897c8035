"""Task results at a million rows (PostgreSQL): the admin's result list, the dashboard's
history panels and the expiry cleanup, against the same figures at 10,000 rows in the same
run.

    .venv/bin/python bench/results.py [--rows 1000000] [--baseline 10000]

Each size gets a fresh database (BENCH_DATABASE_URL, default the local server), migrated,
filled with COPY and analysed. The rows span eight days (the last seven kept, the oldest day
expired): 90% SUCCESS, 5% FAILURE and the other states; 50 task names, the commonest much
more common; 30% sent by one of 200 periodic tasks.

Figures (median of 5 after a warm-up, milliseconds, through the Flask app with an admin
logged in): the result list's first page, and filtered by state, task name, periodic task
and a date range (target <= 300 ms each); the dashboard's history panels (<= 500 ms); the
cleanup of the expired day while a writer inserts 1,000 rows a second: rows deleted per
second (target >= 1,000) and the writer's longest insert (a stalled writer would show here).
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench.harness import BIN, ROOT  # noqa: E402
from bench.scale import fresh_postgres_database, note  # noqa: E402

STATES = [("SUCCESS", 90), ("FAILURE", 5), ("PENDING", 2), ("STARTED", 1), ("RETRY", 1)]
STATES.append(("REVOKED", 1))
COLUMNS = (
    "task_id",
    "task_name",
    "periodic_task_name",
    "args",
    "kwargs",
    "state",
    "worker",
    "queue",
    "retries",
    "result",
    "created_at",
    "date_done",
)
DAYS = 8


def plain_url(database_url):
    return database_url.replace("postgresql+psycopg", "postgresql")


def fill(database_url, rows):
    import psycopg

    rng = random.Random(rows)
    now = datetime.now(UTC)
    names = [f"tasks.bench.job{index}" for index in range(50)]
    name_weights = [1 / (index + 1) for index in range(50)]
    periodic = [f"nightly-{index}" for index in range(200)]
    states, state_weights = zip(*STATES, strict=True)
    span = DAYS * 86400

    def generate():
        for index in range(rows):
            created = now - timedelta(seconds=span * rng.random())
            state = rng.choices(states, state_weights)[0]
            done = created + timedelta(seconds=rng.random() * 5)
            yield (
                uuid.UUID(int=rng.getrandbits(128)).hex,
                rng.choices(names, name_weights)[0],
                rng.choice(periodic) if index % 10 < 3 else None,
                "[1]",
                "{}",
                state,
                "celery@bench",
                "default",
                0,
                "null" if state != "FAILURE" else '{"exc_type": "RuntimeError"}',
                created,
                done if state in ("SUCCESS", "FAILURE", "REVOKED") else None,
            )

    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        with conn.cursor().copy(f"COPY task_results ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in generate():
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE task_results")
    return names[0], periodic[0]


def login(app):
    import re

    from luffy.extensions import db
    from luffy.models import User

    with app.app_context():
        user = User(username="bench-admin", is_admin=True)
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post(
        "/login",
        data={"username": "bench-admin", "password": "bench-password", "csrf_token": token},
    )
    assert response.status_code == 302, "admin login failed"
    return client


def timed(fn, repeat=5):
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def list_figures(app, client, task_name, periodic_name):
    view = next(v for v in app.extensions["luffy_admin"]._views if v.endpoint == "taskresult")
    args = {}
    for index, flt in enumerate(view._filters):
        key = (flt.column.key, flt.operation())
        args.setdefault(key, view.get_filter_arg(index, flt))
    day_ago = datetime.now(UTC) - timedelta(days=1)
    local = day_ago.astimezone().strftime("%Y-%m-%d+%H:%M:%S")
    pages = {
        "list_first_page": "",
        "list_by_state": f"?flt0_{args[('state', 'equals')]}=FAILURE",
        "list_by_task_name": f"?flt0_{args[('task_name', 'equals')]}={task_name}",
        "list_by_periodic_task": f"?flt0_{args[('periodic_task_name', 'equals')]}={periodic_name}",
        "list_by_date_range": f"?flt0_{args[('created_at', 'greater than')]}={local}",
    }

    def get(query):
        response = client.get(f"/admin/taskresult/{query}")
        assert response.status_code == 200, response.get_data(as_text=True)[-500:]

    return {name: timed(lambda q=query: get(q)) for name, query in pages.items()}


def history_figure(app):
    from luffy.dashboard.services import task_history

    def run():
        with app.app_context():
            task_history()

    return {"dashboard_history": timed(run)}


def cleanup_figures(app, database_url):
    """Cleanup of the expired day while a writer inserts 1,000 rows a second."""
    import psycopg

    stop, stalls, written = threading.Event(), [], [0]

    def writer():
        with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                now = datetime.now(UTC)
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO task_results (task_id, state, args, kwargs, retries, "
                        "created_at) VALUES (%s, 'PENDING', '[]', '{}', 0, %s)",
                        [(uuid.uuid4().hex, now) for _ in range(100)],
                    )
                took = time.perf_counter() - started
                stalls.append(took)
                written[0] += 100
                time.sleep(max(0.0, 0.1 - took))  # 100 rows every 0.1 s

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1)
    backend = app.extensions["celery"].backend
    started = time.perf_counter()
    deleted = backend.cleanup()
    seconds = time.perf_counter() - started
    stop.set()
    thread.join()
    return {
        "cleanup_rows_per_second": deleted / seconds if seconds else 0.0,
        "cleanup_deleted": deleted,
        "writer_longest_insert": max(stalls) * 1000,
        "writer_rows_per_second": written[0] / (seconds + 1),
    }


def one_size(rows):
    from luffy import create_app

    database_url, drop = fresh_postgres_database()
    try:
        env = {**os.environ, "LUFFY_ENV": "development", "DATABASE_URL": database_url}
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        note(f"{rows} rows: filling")
        task_name, periodic_name = fill(database_url, rows)
        os.environ.update(env)
        app = create_app()
        app.config["WTF_CSRF_ENABLED"] = True
        client = login(app)
        note(f"{rows} rows: measuring")
        figures = list_figures(app, client, task_name, periodic_name)
        figures.update(history_figure(app))
        figures.update(cleanup_figures(app, database_url))
        with app.app_context():
            from luffy.extensions import db

            db.engine.dispose()
        return figures
    finally:
        drop()


TARGETS = [
    ("list_first_page", "ms", "<= 300 ms"),
    ("list_by_state", "ms", "<= 300 ms"),
    ("list_by_task_name", "ms", "<= 300 ms"),
    ("list_by_periodic_task", "ms", "<= 300 ms"),
    ("list_by_date_range", "ms", "<= 300 ms"),
    ("dashboard_history", "ms", "<= 500 ms"),
    ("cleanup_rows_per_second", "rows/s", ">= 1000 rows/s"),
    ("cleanup_deleted", "rows", ""),
    ("writer_longest_insert", "ms", "(100 rows per insert)"),
    ("writer_rows_per_second", "rows/s", "~1000 rows/s"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    options = parser.parse_args()
    base = one_size(options.baseline)
    big = one_size(options.rows)
    for name, unit, target in TARGETS:
        print(
            f"results_{name}_{options.rows}_rows: {big[name]:.1f} {unit} "
            f"(target {target or '-'}; {options.baseline} rows: {base[name]:.1f} {unit})"
        )
    slowest = max(big[name] for name, *_ in TARGETS[:5])
    print(f"headline_slowest_list_page_vs_300ms: {slowest / 300:.2f}x")


if __name__ == "__main__":
    main()
