"""The database beat scheduler, end to end: the admin form, a real ``celery -A tasks beat``
process, a real worker and the private Redis broker; the known failures of database
schedulers (docs/schedules.md) each proved absent."""

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import beat_tasks  # noqa: F401  (registers tests.beat_probe in this process)
import pytest
from conftest import BIN, ROOT, RUNTIME, csrf_token_from, start_worker, stop_worker
from sqlalchemy import select, text, update

from luffy.extensions import db
from luffy.models import IntervalSchedule, PeriodicTask, TaskResult

UTC = UTC
QUEUE = "beat-test"  # only this module's worker consumes it
BEAT_ENV = {"BEAT_LOCK_TIMEOUT": "4", "BEAT_CHANGE_CHECK_SECONDS": "0.5"}


# -- processes ----------------------------------------------------------------------------
def start_beat(extra_env=None):
    """A real ``celery -A tasks beat`` subprocess (it ticks at least every 0.5 s)."""
    log_path = RUNTIME["tmp"] / f"beat-{uuid.uuid4().hex[:6]}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115  (the beat writes to it until it stops)
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO", "--no-enable-remote-control"],
        cwd=ROOT,
        env={**os.environ, **BEAT_ENV, **(extra_env or {})},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log_path = log_path
    return process


def beat_log(process):
    return process.log_path.read_text(errors="replace")


def stop_beat(process, sig=signal.SIGTERM):
    stop_worker(process, sig)


@pytest.fixture(scope="module")
def probe_worker(app):
    """A worker that knows tests.beat_probe and consumes only QUEUE."""
    process = start_worker(
        app,
        "-c",
        "1",
        "-Q",
        QUEUE,
        env={"CELERY_EXTRA_IMPORTS": "tests.tasks_for_tests,tests.beat_tasks"},
    )
    yield process
    stop_worker(process)


@pytest.fixture
def beat(app):
    processes = []

    def start(extra_env=None):
        process = start_beat(extra_env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_beat(process)


def runs(redis_client, tag):
    return [json.loads(item) for item in redis_client.lrange(f"luffy:test:beat:{tag}", 0, -1)]


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def add_task(app, name, tag, seconds=1, **fields):
    """A periodic tests.beat_probe row written through the ORM (as code or the CLI would)."""
    with app.app_context():
        task = PeriodicTask(
            name=name,
            task="tests.beat_probe",
            args=json.dumps([tag]),
            queue=QUEUE,
            interval=IntervalSchedule(every=seconds, period="seconds"),
            **fields,
        )
        db.session.add(task)
        db.session.commit()
        return task.id


def admin_token(admin_client, url):
    return csrf_token_from(admin_client.get(url).get_data(as_text=True))


def admin_create_interval(admin_client, every, period="seconds"):
    token = admin_token(admin_client, "/admin/intervalschedule/new/")
    response = admin_client.post(
        "/admin/intervalschedule/new/",
        data={"every": str(every), "period": period, "csrf_token": token},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    return db.session.scalar(
        select(IntervalSchedule.id).order_by(IntervalSchedule.id.desc()).limit(1)
    )


def form_errors(response):
    """The error texts Flask-Admin shows under form fields."""
    import re

    page = response.get_data(as_text=True)
    return (
        re.findall(r'class="invalid-feedback"[^>]*>\s*(?:<[^>]+>\s*)*([^<]+)', page) or page[-1500:]
    )


def task_form(name, tag, **overrides):
    data = {
        "name": name,
        "task": "tests.beat_probe",
        "interval": "",
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
    }
    data.update(overrides)
    return data


# -- the admin, a real beat and a real worker ---------------------------------------------
def test_admin_form_schedule_runs_edit_applies_within_5s_and_disable_stops(
    app, admin_client, redis_client, probe_worker, beat
):
    with app.app_context():
        slow = admin_create_interval(admin_client, 1, "hours")
        fast = admin_create_interval(admin_client, 1)
    token = admin_token(admin_client, "/admin/periodictask/new/")
    response = admin_client.post(
        "/admin/periodictask/new/",
        data={**task_form("probe-admin", "admin", interval=str(fast)), "csrf_token": token},
    )
    assert response.status_code == 302, form_errors(response)

    process = beat()
    seen = wait_for(lambda: len(runs(redis_client, "admin")) >= 2, 30)
    assert seen, beat_log(process)[-3000:]
    # The schedule's name travels in the headers and lands in the results table.
    assert {run["periodic_task_name"] for run in runs(redis_client, "admin")} == {"probe-admin"}
    with app.app_context():
        first_id = runs(redis_client, "admin")[0]["id"]
        row = wait_for(
            lambda: db.session.scalar(
                select(TaskResult).where(
                    TaskResult.task_id == first_id, TaskResult.state == "SUCCESS"
                )
            ),
            10,
        )
        assert row is not None and row.periodic_task_name == "probe-admin"
        task_id = db.session.scalar(
            select(PeriodicTask.id).where(PeriodicTask.name == "probe-admin")
        )
        db.session.remove()

    # Edit in the admin: every hour -> no more runs; then back to every second: applied in < 5 s.
    edit_url = f"/admin/periodictask/edit/?id={task_id}"
    token = admin_token(admin_client, edit_url)
    response = admin_client.post(
        edit_url,
        data={**task_form("probe-admin", "admin", interval=str(slow)), "csrf_token": token},
    )
    assert response.status_code == 302, form_errors(response)
    time.sleep(4)  # the change is applied within the check interval; let a run in flight land
    count = len(runs(redis_client, "admin"))
    time.sleep(3)
    assert len(runs(redis_client, "admin")) == count, "the hourly schedule still ran every second"

    token = admin_token(admin_client, edit_url)
    edited_at = time.time()
    response = admin_client.post(
        edit_url,
        data={**task_form("probe-admin", "admin-fast", interval=str(fast)), "csrf_token": token},
    )
    assert response.status_code == 302
    assert wait_for(lambda: runs(redis_client, "admin-fast"), 15), beat_log(process)[-3000:]
    assert runs(redis_client, "admin-fast")[0]["at"] - edited_at < 5.0

    # The bulk "disable" action (one UPDATE for all rows) stops it.
    token = admin_token(admin_client, "/admin/periodictask/")
    response = admin_client.post(
        "/admin/periodictask/action/",
        data={"action": "disable", "rowid": [str(task_id)], "csrf_token": token},
    )
    assert response.status_code == 302
    time.sleep(4)
    count = len(runs(redis_client, "admin-fast"))
    time.sleep(3)
    assert len(runs(redis_client, "admin-fast")) == count, "disabled task still runs"
    # What ran was written back: run count and last run.
    with app.app_context():
        row = db.session.get(PeriodicTask, task_id)
        total = len(runs(redis_client, "admin")) + len(runs(redis_client, "admin-fast"))
        assert row.total_run_count == total
        assert row.last_run_at is not None
    assert process.poll() is None


def test_one_off_runs_once_expires_stops_start_time_waits(app, redis_client, probe_worker, beat):
    now = datetime.now(UTC)
    add_task(app, "once", "once", one_off=True)
    add_task(app, "expiring", "expiring", expires=now + timedelta(seconds=6))
    add_task(app, "later", "later", start_time=now + timedelta(seconds=8))
    process = beat()
    assert wait_for(lambda: runs(redis_client, "later"), 30), beat_log(process)[-3000:]
    time.sleep(3)

    assert len(runs(redis_client, "once")) == 1
    expiring = runs(redis_client, "expiring")
    # Sent up to the 6th second (a worker under load may run the last a little later), never after.
    assert (
        expiring and max(run["at"] for run in expiring) < (now + timedelta(seconds=8)).timestamp()
    )
    assert (
        min(run["at"] for run in runs(redis_client, "later"))
        >= (now + timedelta(seconds=8)).timestamp()
    )
    with app.app_context():
        once = db.session.scalar(select(PeriodicTask).where(PeriodicTask.name == "once"))
        assert once.enabled is False and once.total_run_count == 1


def test_two_beats_only_one_sends_and_the_other_takes_over(app, redis_client, probe_worker, beat):
    add_task(app, "lockstep", "lockstep")
    first = beat()
    assert wait_for(lambda: redis_client.get("luffy:beat:lock"), 30), beat_log(first)[-3000:]
    second = beat()
    assert wait_for(lambda: "waiting to take over" in beat_log(second), 30), beat_log(second)[
        -3000:
    ]
    time.sleep(6)
    holder = redis_client.get("luffy:beat:lock").decode()
    assert holder.split(":")[1] in {str(first.pid), str(second.pid)}
    assert float(redis_client.get("luffy:beat:last_tick")) > time.time() - 3

    # Kill the holder without a chance to release the lock: the other takes over in time.
    victim, survivor = (
        (first, second) if holder.split(":")[1] == str(first.pid) else (second, first)
    )
    killed_at = time.time()
    stop_beat(victim, signal.SIGKILL)
    assert wait_for(
        lambda: (
            (redis_client.get("luffy:beat:lock") or b"").decode().split(":")[1:2]
            == [str(survivor.pid)]
        ),
        4 + 6,
    ), beat_log(survivor)[-3000:]
    assert wait_for(
        lambda: any(run["at"] > killed_at + 1 for run in runs(redis_client, "lockstep")), 10
    )
    time.sleep(2)

    times = sorted(run["at"] for run in runs(redis_client, "lockstep"))
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # Every second, once: two beats sending would put two runs a few ms apart.
    assert min(gaps) > 0.5, gaps
    assert len(times) <= (times[-1] - times[0]) + 2


# -- losing the database ----------------------------------------------------
PG_SERVER = os.environ.get("LUFFY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["refused", "restarted"])
def outage_database(request, app):
    """A PostgreSQL database of its own, with the schema, that the test can cut off: on the
    shared server by refusing connections and killing its sessions ("refused"), or on a
    server of the test's own that is really stopped and started again ("restarted")."""
    from private_postgres import PrivatePostgres, missing_reason
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from config import sqlalchemy_url

    server = None
    if request.param == "restarted":
        if missing_reason():
            pytest.skip(f"no private PostgreSQL server to restart: {missing_reason()}")
        server = PrivatePostgres(tempfile.mkdtemp(prefix="luffy-pg-"))
        request.addfinalizer(server.close)
    server_url = make_url(sqlalchemy_url(server.url() if server else PG_SERVER))
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect():
            pass
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"no PostgreSQL server at {PG_SERVER}: {error}")
    name = f"luffy_beat_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.set(database=name)
    engine = create_engine(url, pool_pre_ping=True)
    db.metadata.create_all(engine)

    def refuse(off):
        with admin.connect() as conn:
            conn.execute(
                text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if off else "true"}')
            )
            if off:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )

    def restart(off):
        server.stop() if off else server.start()

    yield url.render_as_string(hide_password=False), engine, restart if server else refuse
    # A test that failed mid-outage left the database cut off: bring it back to clean up.
    if server and not server.running():
        server.start()
    elif not server:
        refuse(False)
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_beat_survives_a_database_outage_and_reconnects(
    app, redis_client, probe_worker, beat, outage_database
):
    from sqlalchemy.orm import Session

    url, engine, cut = outage_database
    with app.app_context(), Session(engine) as session:
        session.add(
            PeriodicTask(
                name="steady",
                task="tests.beat_probe",
                args=json.dumps(["steady"]),
                queue=QUEUE,
                interval=IntervalSchedule(every=1, period="seconds"),
            )
        )
        session.commit()
    process = beat({"DATABASE_URL": url})
    assert wait_for(lambda: len(runs(redis_client, "steady")) >= 2, 30), beat_log(process)[-3000:]

    cut(True)
    cut_at = time.time()
    time.sleep(7)
    during = [run for run in runs(redis_client, "steady") if run["at"] > cut_at + 1]
    assert len(during) >= 4, "beat stopped sending while the database was away"
    assert "database unavailable" in beat_log(process)
    cut(False)

    # Back: an edit made now is applied, so beat reconnected; the runs made during the
    # outage were written back once it could.
    with app.app_context(), Session(engine) as session:
        session.scalar(select(PeriodicTask).where(PeriodicTask.name == "steady")).args = json.dumps(
            ["after"]
        )
        session.commit()
    assert wait_for(lambda: runs(redis_client, "after"), 20), beat_log(process)[-3000:]
    assert process.poll() is None
    with Session(engine) as session:
        session.execute(
            update(PeriodicTask).where(PeriodicTask.name == "steady").values(enabled=False)
        )
        session.commit()
    time.sleep(4)
    with Session(engine) as session:
        total = session.scalar(
            select(PeriodicTask.total_run_count).where(PeriodicTask.name == "steady")
        )
    sent = len(runs(redis_client, "steady")) + len(runs(redis_client, "after"))
    assert total == sent, beat_log(process)[-3000:]


# -- one bad row never stops beat ---------------------------------------------------------
def test_bad_rows_written_outside_the_admin_are_disabled_and_beat_goes_on(
    app, redis_client, probe_worker, beat
):
    add_task(app, "steady-good", "good")
    bad = {
        "bad-args": ("args", "not json", "不是合法的 JSON"),
        "bad-headers": ("headers", "[]", "必须是JSON 对象"),
        "bad-kwargs": ("kwargs", "[1]", "必须是JSON 对象"),
        "args-object": ("args", '{"a": 1}', "必须是JSON 数组"),
    }
    for name, (column, value, _) in bad.items():
        row_id = add_task(app, name, name)
        with app.app_context():  # SQL, a migration or another tool: no form checks
            db.session.execute(
                text(f"UPDATE periodic_tasks SET {column} = :value WHERE id = :id"),
                {"value": value, "id": row_id},
            )
            db.session.commit()
    process = beat()
    assert wait_for(lambda: len(runs(redis_client, "good")) >= 3, 30), beat_log(process)[-3000:]
    assert process.poll() is None, beat_log(process)[-3000:]
    with app.app_context():
        rows = {
            row.name: row
            for row in db.session.scalars(
                select(PeriodicTask).where(PeriodicTask.name.in_(list(bad)))
            ).unique()
        }
        for name, (_, _, reason) in bad.items():
            assert rows[name].enabled is False and reason in rows[name].disabled_reason, name
    log = beat_log(process)
    for name in bad:
        assert log.count(f"periodic task '{name}' cannot be sent") == 1, log[-3000:]
    stop_beat(process)

    # The next start finds them disabled: nothing to complain about, and it runs.
    again = beat()
    assert wait_for(lambda: len(runs(redis_client, "good")) >= 6, 30), beat_log(again)[-3000:]
    assert "cannot be sent" not in beat_log(again) and again.poll() is None
