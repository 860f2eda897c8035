"""Beat at 100,000 schedules: a real ``celery -A tasks beat`` on PostgreSQL, against the
same measurements on 1,000 rows in the same run.

    .venv/bin/python bench/beat.py [--rows 100000] [--baseline 1000] [--idle-seconds 30]

Each size gets a fresh PostgreSQL database (BENCH_DATABASE_URL, default the local server)
filled with COPY, and a private Redis (broker and lock). Nothing consumes the queues: a send
is seen as the message arriving in the broker's list.

The realistic mix: 60% intervals (10 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 day; the longer,
the more common), 35% crontabs in four time zones, 5% one-off clocked tasks over the next
30 days; every row last ran a random part of its period ago, so sends are spread (about
250 a second at 100,000 rows). On top of it: 10% of the rows share a ``M * * * *`` crontab
due at one minute M (the burst), one overdue row (the first send), and the edit probes.

Figures (each with its target; the baseline is the same figure at the small size):
- start to first due send; load time; RSS after the load and at its peak;
- create, edit and delete applied while loaded: median and max of 10 each (a create or an
  edit is applied when its first message arrives; a delete when beat reports the version);
- the burst: lateness of the 50th, 99th and last percent after the due minute;
- idle CPU: beat's CPU seconds per minute with rows none of which is due (a second fill).
"""

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from local_redis import free_port, start_redis  # noqa: E402

from bench.harness import BIN, ROOT  # noqa: E402
from bench.scale import fresh_postgres_database, note  # noqa: E402

INTERVALS = [(10, 2), (60, 8), (300, 15), (900, 20), (3600, 25), (21600, 15), (86400, 15)]
CRONS = ["0 * * * *", "*/15 * * * *", "30 2 * * *", "0 9 * * 1-5", "0 0 1 * *", "45 18 * * *"]
ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "UTC"]
TASK_COLUMNS = (
    "name",
    "task",
    "interval_id",
    "crontab_id",
    "clocked_id",
    "args",
    "kwargs",
    "queue",
    "headers",
    "one_off",
    "enabled",
    "last_run_at",
    "total_run_count",
    "date_changed",
    "description",
)
EDITS = 10


# -- the database ------------------------------------------------------------------------
def copy_rows(cursor, table, columns, rows):
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def fill(database_url, rows, idle, burst_minute=None):
    """COPY ``rows`` periodic tasks of the mix into a migrated database; returns the ids
    of the burst's crontab (or None)."""
    import psycopg

    rng = random.Random(rows)
    now = datetime.now(UTC)
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        cur = conn.cursor()
        every = [(seconds, weight) for seconds, weight in INTERVALS if not idle or seconds >= 600]
        interval_ids = {}
        for seconds, _ in every:
            cur.execute(
                "INSERT INTO interval_schedules (every, period) "
                "VALUES (%s, 'seconds') RETURNING id",
                (seconds,),
            )
            interval_ids[seconds] = cur.fetchone()[0]
        crontab_ids = []
        for line in CRONS:
            minute, hour, dom, month, dow = line.split()
            if idle:
                minute, hour = "0", str((now.hour + 6) % 24)  # hours away in every zone
            for zone in ZONES:
                cur.execute(
                    "INSERT INTO crontab_schedules (minute, hour, day_of_week, day_of_month, "
                    "month_of_year, timezone) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (minute, hour, dow, dom, month, zone),
                )
                crontab_ids.append(cur.fetchone()[0])
        burst_id = None
        if burst_minute is not None:
            cur.execute(
                "INSERT INTO crontab_schedules (minute, hour, day_of_week, day_of_month, "
                "month_of_year, timezone) VALUES (%s, '*', '*', '*', '*', 'UTC') RETURNING id",
                (str(burst_minute),),
            )
            burst_id = cur.fetchone()[0]
        clocked = rows * 5 // 100
        copy_rows(
            cur,
            "clocked_schedules",
            ["clocked_time"],
            ((now + timedelta(days=1 + 29 * rng.random()),) for _ in range(clocked)),
        )
        cur.execute("SELECT id FROM clocked_schedules ORDER BY id")
        clocked_ids = [row[0] for row in cur.fetchall()]
        weights = [weight for _, weight in every]
        choices = [seconds for seconds, _ in every]
        burst = rows // 10 if burst_id else 0

        def task_rows():
            for index in range(rows):
                row = dict.fromkeys(TASK_COLUMNS)
                row.update(
                    name=f"bench-{index}",
                    task="bench.beat.probe",
                    args=json.dumps([index]),
                    kwargs="{}",
                    queue="bench-bulk" if index >= burst else "bench-burst",
                    headers="{}",
                    one_off=False,
                    enabled=True,
                    total_run_count=0,
                    date_changed=now - timedelta(days=2),
                    description="",
                )
                share = index % 100
                if index < burst:
                    row["crontab_id"], row["last_run_at"] = burst_id, now
                elif share < 60:
                    seconds = rng.choices(choices, weights)[0]
                    row["interval_id"] = interval_ids[seconds]
                    lag = 0 if idle else rng.random() * seconds
                    row["last_run_at"] = now - timedelta(seconds=lag)
                elif share < 95:
                    row["crontab_id"] = crontab_ids[index % len(crontab_ids)]
                    row["last_run_at"] = now
                else:
                    row["clocked_id"] = clocked_ids[index % len(clocked_ids)]
                yield [row[column] for column in TASK_COLUMNS]

        copy_rows(cur, "periodic_tasks", TASK_COLUMNS, task_rows())
        if not idle:  # one overdue row: the first due send
            cur.execute(
                "INSERT INTO periodic_tasks (name, task, interval_id, args, kwargs, queue, "
                "headers, one_off, enabled, last_run_at, total_run_count, date_changed, "
                "description) VALUES ('bench-first', 'bench.beat.probe', %s, '[0]', '{}', "
                "'bench-first', '{}', false, true, %s, 0, %s, '')",
                (interval_ids[86400], now - timedelta(days=2), now - timedelta(days=2)),
            )
        cur.execute("ANALYZE")
    return burst_id


# -- processes -----------------------------------------------------------------------------
def start_beat(env, log):
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO", "--no-enable-remote-control"],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def proc_status(pid, field):
    """A /proc/<pid>/status field in MB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate, timeout, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


class Site:
    """A fresh database and Redis, and the Flask app of the bench process bound to them."""

    def __init__(self, tmp, label):
        import redis

        self.tmp = tmp
        self.database_url, self.drop = fresh_postgres_database()
        port = free_port()
        self.redis_process = start_redis(port, tmp / f"redis-{label}")
        self.env = {
            **os.environ,
            "LUFFY_ENV": "development",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/1",
            "CELERY_EXTRA_IMPORTS": "bench.beat_tasks",
        }
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.broker = redis.Redis(port=port, db=1)
        self.cache = redis.Redis(port=port, db=0)

    def close(self):
        self.redis_process.terminate()
        self.redis_process.wait()
        self.drop()


# -- measurements ----------------------------------------------------------------------------
def loaded_line(log):
    for line in log.read_text(errors="replace").splitlines():
        if "schedule loaded" in line:
            return line
    return None


def start_figures(site, rows, log):
    """Start beat on a filled database: (process, figures)."""
    started = time.monotonic()
    beat = start_beat(site.env, log)
    if not wait_until(lambda: site.broker.llen("bench-first"), 180):
        stop(beat)
        sys.exit(f"beat never sent the overdue row:\n{log.read_text()[-3000:]}")
    first = time.monotonic() - started
    line = wait_until(lambda: loaded_line(log), 120) or ""
    load = float(line.rsplit(" in ", 1)[1].rstrip("s")) if " in " in line else float("nan")
    return beat, {"start_to_first_send": first, "load": load, "rss": proc_status(beat.pid, "VmRSS")}


def applied(site, version):
    value = site.cache.get("luffy:beat:applied_version")
    return value is not None and int(value) >= version


def edit_figures(site, app):
    """Seconds for each create, edit and delete to be applied (EDITS of each).

    An edit moves a parked row (a clocked run a year away) to a clocked run now, on a queue
    of its own; a create adds a row due now; a delete removes that row again.
    """
    from luffy.beat.changes import current_version
    from luffy.extensions import db
    from luffy.models import ClockedSchedule, IntervalSchedule, PeriodicTask
    from luffy.models.base import utcnow

    times = {"create": [], "edit": [], "delete": []}
    with app.app_context():
        every10 = IntervalSchedule(every=10, period="seconds")
        far = utcnow() + timedelta(days=365)
        parked = [
            PeriodicTask(
                name=f"bench-edit-{index}",
                task="bench.beat.probe",
                args="[0]",
                queue="bench-parked",
                clocked=ClockedSchedule(clocked_time=far),
            )
            for index in range(EDITS)
        ]
        db.session.add_all([every10, *parked])
        db.session.commit()
        time.sleep(3)  # beat has them
        for index, row in enumerate(parked):
            posted = time.monotonic()
            row.queue, row.clocked = f"bench-edit-{index}", ClockedSchedule(clocked_time=utcnow())
            db.session.commit()
            wait_until(lambda i=index: site.broker.llen(f"bench-edit-{i}"), 30)
            times["edit"].append(time.monotonic() - posted)
            posted = time.monotonic()
            new = PeriodicTask(
                name=f"bench-new-{index}",
                task="bench.beat.probe",
                args="[0]",
                queue=f"bench-new-{index}",
                interval=every10,
                last_run_at=utcnow() - timedelta(hours=1),
            )
            db.session.add(new)
            db.session.commit()
            wait_until(lambda i=index: site.broker.llen(f"bench-new-{i}"), 30)
            times["create"].append(time.monotonic() - posted)
            posted = time.monotonic()
            db.session.delete(new)
            db.session.commit()
            with db.engine.connect() as connection:
                version = current_version(connection)
            wait_until(lambda v=version: applied(site, v), 30)
            times["delete"].append(time.monotonic() - posted)
    return times


def sends_logged(log, since=0):
    """(sends beat logged after byte ``since`` of its log, the log's size)."""
    data = log.read_bytes()
    return data[since:].count(b"Sending due task"), len(data)


def burst_figures(site, due, size, pid, log):
    """Seconds after ``due`` at which 50%, 99% and all of the burst had been sent, and
    beat's CPU per send over the burst (what the lateness is made of on a shared machine)."""
    wait_until(lambda: datetime.now(UTC) >= due - timedelta(seconds=1), 600, step=0.2)
    cpu_before, (_, log_at) = cpu_seconds(pid), sends_logged(log)
    marks, reached = {0.5: None, 0.99: None, 1.0: None}, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and marks[1.0] is None:
        reached = site.broker.llen("bench-burst")
        late = (datetime.now(UTC) - due).total_seconds()
        for share in marks:
            if marks[share] is None and reached >= share * size:
                marks[share] = late
        time.sleep(0.005)
    figures = {f"burst_p{int(share * 100)}_lateness": late for share, late in marks.items()}
    # Every send beat made over the burst, the burst's and the mix's alike.
    cpu, (sends, _) = cpu_seconds(pid) - cpu_before, sends_logged(log, log_at)
    figures["burst_cpu_ms_per_send"] = cpu * 1000 / max(sends, 1)
    # The send rate over the burst: what the lateness is made of, comparable across sizes.
    figures["burst_sends_per_second"] = size / marks[1.0] if marks[1.0] else float("nan")
    return figures


def idle_figures(site, rows, log, seconds):
    beat = start_beat(site.env, log)
    try:
        if not wait_until(lambda: loaded_line(log), 300, step=0.1):
            sys.exit(f"beat did not load:\n{log.read_text()[-3000:]}")
        time.sleep(3)
        before = cpu_seconds(beat.pid)
        time.sleep(seconds)
        return {"idle_cpu": (cpu_seconds(beat.pid) - before) * 60 / seconds}
    finally:
        stop(beat)


def drain_bulk(site, stop_at):
    """Empty the queue the mix sends to, now and then, so Redis does not fill up."""
    import threading

    def run():
        while time.monotonic() < stop_at[0]:
            site.broker.delete("bench-bulk")
            time.sleep(5)

    threading.Thread(target=run, daemon=True).start()


def one_size(tmp, rows, idle_seconds):
    """Every figure for ``rows`` rows: the realistic run, then the idle run."""
    from luffy import create_app

    figures = {}
    site = Site(tmp, f"{rows}")
    try:
        os.environ.update(site.env)
        app = create_app()
        due = (datetime.now(UTC) + timedelta(seconds=150)).replace(second=0, microsecond=0)
        due += timedelta(minutes=1)
        note(f"{rows} rows: filling (burst due at {due:%H:%M:%S} UTC)")
        fill(site.database_url, rows, idle=False, burst_minute=due.minute)
        stop_at = [time.monotonic() + 900]
        drain_bulk(site, stop_at)
        beat, start = start_figures(site, rows, tmp / f"beat-{rows}.log")
        figures.update(start)
        try:
            note(f"{rows} rows: loaded in {start['load']:.2f} s; edits")
            for kind, samples in edit_figures(site, app).items():
                figures[f"{kind}_median"] = statistics.median(samples)
                figures[f"{kind}_max"] = max(samples)
            note(f"{rows} rows: waiting for the burst")
            log = tmp / f"beat-{rows}.log"
            figures.update(burst_figures(site, due, rows // 10, beat.pid, log))
            figures["rss_peak"] = proc_status(beat.pid, "VmHWM")
        finally:
            stop_at[0] = 0
            stop(beat)
    finally:
        site.close()
    site = Site(tmp, f"{rows}-idle")
    try:
        fill(site.database_url, rows, idle=True)
        note(f"{rows} rows: idle CPU over {idle_seconds} s")
        figures.update(idle_figures(site, rows, tmp / f"beat-{rows}-idle.log", idle_seconds))
    finally:
        site.close()
    return figures


TARGETS = [
    ("start_to_first_send", "s", "<= 10 s"),
    ("load", "s", ""),
    ("rss", "MB", "<= 300 MB"),
    ("rss_peak", "MB", "<= 300 MB"),
    ("edit_median", "s", "<= 1 s"),
    ("edit_max", "s", "<= 2 s"),
    ("create_median", "s", "<= 1 s"),
    ("create_max", "s", "<= 2 s"),
    ("delete_median", "s", "<= 1 s"),
    ("delete_max", "s", "<= 2 s"),
    ("burst_p50_lateness", "s", ""),
    ("burst_p99_lateness", "s", "<= 5 s"),
    ("burst_p100_lateness", "s", "<= 5 s"),
    ("burst_sends_per_second", "sends/s", "~ the baseline's"),
    ("burst_cpu_ms_per_send", "ms", "~ the baseline's"),
    ("idle_cpu", "s/min", "<= 2x the baseline"),
]


def main():
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="luffy-bench-beat-"))
    base = one_size(tmp, options.baseline, options.idle_seconds)
    big = one_size(tmp, options.rows, options.idle_seconds)
    for name, unit, target in TARGETS:
        value, baseline = big.get(name), base.get(name)
        shown = "-" if value is None else f"{value:.2f}"
        print(
            f"beat_{name}_{options.rows}_rows: {shown} {unit} "
            f"(target {target or '-'}; {options.baseline} rows: "
            f"{'-' if baseline is None else f'{baseline:.2f}'} {unit})"
        )
    ratio = big["idle_cpu"] / base["idle_cpu"] if base["idle_cpu"] else float("inf")
    print(f"headline_idle_cpu_{options.rows}_vs_{options.baseline}_rows: {ratio:.2f}x")


if __name__ == "__main__":
    main()
