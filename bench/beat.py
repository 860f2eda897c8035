"""Beat: how fast an admin edit reaches a run, and what an idle beat costs with many rows.

1. Edit to run: a real ``celery -A tasks beat`` and a worker; a periodic task runs every hour;
   an admin (Flask test client, the real admin form with CSRF) changes it to every second
   with a new argument; the figure is the time from the form post to the worker running the
   changed task. Median of 10 (target <= 5 s, <= 2 s better).
2. Idle CPU: beat's own CPU seconds (user + system, from /proc) per minute of wall time,
   with 1,000 and with 10,000 enabled rows none of which is due; measured over
   BEAT_BENCH_SECONDS (default 30) after the first load and scaled to a minute. The headline
   ratio is 10,000 rows over 1,000 rows: an idle tick must not grow with the rows (~1.0x).
3. The full reload every BEAT_FULL_RELOAD_SECONDS (300 s): CPU of one reload of 10,000 rows.

Run: .venv/bin/python bench/beat.py
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.harness import BIN, ROOT, Environment  # noqa: E402

CPU_SECONDS = float(os.environ.get("BEAT_BENCH_SECONDS", "30"))
EDITS = 10
QUEUE = "bench-beat"


def cpu_seconds(pid):
    """User + system CPU seconds of a process and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(value) for value in fields[11:15]) / ticks


def start(argv, env, log):
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return None


def login_admin(app):
    from luffy.extensions import db
    from luffy.models import User

    with app.app_context():
        user = User(username="bench-admin", is_admin=True)
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    token = csrf(client, "/login")
    response = client.post(
        "/login",
        data={"username": "bench-admin", "password": "bench-password", "csrf_token": token},
    )
    assert response.status_code == 302, "admin login failed"
    return client


def csrf(client, url):
    page = client.get(url).get_data(as_text=True)
    match = re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', page
    )
    return match.group(1) or match.group(2)


def edit_to_run(environment, app):
    """Median seconds from an admin form post to the first run of the changed task."""
    import bench.beat_tasks  # noqa: F401  (the admin offers registered task names only)
    from luffy.extensions import db
    from luffy.models import IntervalSchedule, PeriodicTask
    from luffy.redis_store import get_redis

    with app.app_context():
        hourly = IntervalSchedule(every=1, period="hours")
        every_second = IntervalSchedule(every=1, period="seconds")
        task = PeriodicTask(
            name="bench-edit",
            task="bench.beat.probe",
            args=json.dumps(["warmup"]),
            queue=QUEUE,
            interval=hourly,
        )
        db.session.add_all([hourly, every_second, task])
        db.session.commit()
        ids = {"hourly": hourly.id, "second": every_second.id, "task": task.id}
    client = login_admin(app)
    env = {**environment.env, "CELERY_EXTRA_IMPORTS": "bench.beat_tasks"}
    beat = start(
        [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO", "--no-enable-remote-control"],
        env,
        environment.tmp / "beat.log",
    )
    worker = start(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "-l",
            "WARNING",
            "-c",
            "1",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        environment.tmp / "worker.log",
    )
    url = f"/admin/periodictask/edit/?id={ids['task']}"

    def post(tag, interval):
        data = {
            "name": "bench-edit",
            "task": "bench.beat.probe",
            "interval": str(interval),
            "crontab": "",
            "clocked": "",
            "solar": "",
            "args": json.dumps([tag]),
            "kwargs": "{}",
            "queue": QUEUE,
            "routing_key": "",
            "priority": "",
            "headers": "{}",
            "expires": "",
            "expire_seconds": "",
            "start_time": "",
            "enabled": "y",
            "description": "",
            "csrf_token": csrf(client, url),
        }
        response = client.post(url, data=data)
        assert response.status_code == 302, response.get_data(as_text=True)[-500:]

    samples = []
    try:
        with app.app_context():
            redis = get_redis()
            # Warm-up: beat and worker up, one changed run through.
            post("warmup-go", ids["second"])
            if not wait_until(lambda: redis.get("luffy:bench:beat:warmup-go"), 90):
                sys.exit(
                    "beat/worker did not start:\n"
                    + (environment.tmp / "beat.log").read_text()[-2000:]
                )
            for index in range(EDITS):
                post(f"park-{index}", ids["hourly"])
                time.sleep(1.5)  # beat has applied the hourly schedule
                tag = f"edit-{index}"
                posted = time.time()
                post(tag, ids["second"])
                ran = wait_until(lambda: redis.get(f"luffy:bench:beat:{tag}"), 30)
                if ran is None:
                    sys.exit(f"edit {index} never ran")
                samples.append(float(ran) - posted)
    finally:
        stop(worker)
        stop(beat)
    return samples


def idle_cpu(environment, app, rows):
    """Beat's CPU seconds per minute with ``rows`` enabled rows, none due; and its reload CPU."""
    from sqlalchemy import delete, insert

    from luffy.beat.changes import mark_schedule_changed
    from luffy.extensions import db
    from luffy.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    with app.app_context(), db.engine.begin() as connection:
        connection.execute(delete(PeriodicTask))
        interval_id = connection.execute(
            insert(IntervalSchedule).values(every=1, period="days")
        ).inserted_primary_key[0]
        crontab_id = connection.execute(
            insert(CrontabSchedule).values(
                minute="0",
                hour="3",
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="Asia/Shanghai",
            )
        ).inserted_primary_key[0]
        now = datetime.now(UTC)
        connection.execute(
            insert(PeriodicTask),
            [
                {
                    "name": f"idle-{index}",
                    "task": "bench.beat.probe",
                    "args": "[0]",
                    "kwargs": "{}",
                    "headers": "{}",
                    "queue": QUEUE,
                    "one_off": False,
                    "enabled": True,
                    "total_run_count": 0,
                    "description": "",
                    "date_changed": now,
                    "last_run_at": now - timedelta(minutes=1),
                    "interval_id": interval_id if index % 2 else None,
                    "crontab_id": None if index % 2 else crontab_id,
                }
                for index in range(rows)
            ],
        )
        mark_schedule_changed(connection)
    beat = start(
        [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO", "--no-enable-remote-control"],
        environment.env,
        environment.tmp / f"beat-{rows}.log",
    )
    log = environment.tmp / f"beat-{rows}.log"
    try:
        loaded = wait_until(
            lambda: (
                f"{rows + 3} enabled" in log.read_text() or f"{rows} enabled" in log.read_text()
            ),
            180,
        )
        if not loaded:
            sys.exit(f"beat did not load {rows} rows:\n" + log.read_text()[-2000:])
        time.sleep(2)
        before = cpu_seconds(beat.pid)
        time.sleep(CPU_SECONDS)
        used = cpu_seconds(beat.pid) - before
    finally:
        stop(beat)
    return used * 60 / CPU_SECONDS


def reload_cpu(app, rows):
    """CPU seconds of one full reload of the schedule (in this process)."""
    from luffy.beat.scheduler import DatabaseScheduler

    sched = DatabaseScheduler(app.extensions["celery"], lazy=True)
    with app.app_context():
        started = time.process_time()
        sched._reload(0)
        used = time.process_time() - started
    assert len(sched.entries) >= rows
    return used


def main():
    environment = Environment()
    try:
        from luffy import create_app

        app = create_app()
        app.config["WTF_CSRF_ENABLED"] = True
        samples = edit_to_run(environment, app)
        median = statistics.median(samples)
        print(f"beat_edit_to_run_median: {median:.2f} s")
        print(f"beat_edit_to_run_max: {max(samples):.2f} s")
        cpu = {rows: idle_cpu(environment, app, rows) for rows in (1000, 10000)}
        for rows, value in cpu.items():
            print(f"beat_idle_cpu_{rows}_rows: {value:.3f} s/min")
        print(f"beat_full_reload_10000_rows: {reload_cpu(app, 10000):.2f} s")
        print(f"edit_to_run_vs_target_5s: {median / 5.0:.2f}x")
        print(f"headline_idle_cpu_10000_vs_1000_rows: {cpu[10000] / cpu[1000]:.2f}x")
    finally:
        environment.close()


if __name__ == "__main__":
    main()
