"""The database beat scheduler, end to end: the admin form, a real ``celery -A tasks beat``
process, a real worker and the private Redis broker; PITFALLS 12-20 each proved absent."""

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

import beat_tasks  # noqa: F401  (registers tests.beat_probe in this process)
from conftest import BIN, ROOT, RUNTIME, csrf_token_from, start_worker, stop_worker
from luffy.extensions import db
from luffy.models import IntervalSchedule, PeriodicTask, ScheduleVersion, TaskResult

UTC = timezone.utc
QUEUE = "beat-test"  # only this module's worker consumes it
BEAT_ENV = {"BEAT_LOCK_TIMEOUT": "4", "BEAT_CHANGE_CHECK_SECONDS": "0.5"}


# -- processes ----------------------------------------------------------------------------
def start_beat(extra_env=None):
    """A real ``celery -A tasks beat`` subprocess (max loop interval 1 s, the default here)."""
    log_path = RUNTIME["tmp"] / f"beat-{uuid.uuid4().hex[:6]}.log"
    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO", "--no-enable-remote-control"],
        cwd=ROOT, env={**os.environ, **BEAT_ENV, **(extra_env or {})}, stdout=log_file,
        stderr=subprocess.STDOUT, start_new_session=True,
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
    process = start_worker(app, "-c", "1", "-Q", QUEUE,
                           env={"CELERY_EXTRA_IMPORTS": "tests.tasks_for_tests,tests.beat_tasks"})
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
        task = PeriodicTask(name=name, task="tests.beat_probe", args=json.dumps([tag]), queue=QUEUE,
                            interval=IntervalSchedule(every=seconds, period="seconds"), **fields)
        db.session.add(task)
        db.session.commit()
        return task.id


def admin_token(admin_client, url):
    return csrf_token_from(admin_client.get(url).get_data(as_text=True))


def admin_create_interval(admin_client, every, period="seconds"):
    token = admin_token(admin_client, "/admin/intervalschedule/new/")
    response = admin_client.post("/admin/intervalschedule/new/",
                                 data={"every": str(every), "period": period, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    return db.session.scalar(select(IntervalSchedule.id).order_by(IntervalSchedule.id.desc()).limit(1))


def form_errors(response):
    """The error texts Flask-Admin shows under form fields."""
    import re

    page = response.get_data(as_text=True)
    return re.findall(r'class="invalid-feedback"[^>]*>\s*(?:<[^>]+>\s*)*([^<]+)', page) or page[-1500:]


def task_form(name, tag, **overrides):
    data = {"name": name, "task": "tests.beat_probe", "interval": "", "crontab": "", "clocked": "",
            "solar": "", "args": json.dumps([tag]), "kwargs": "{}", "queue": QUEUE, "routing_key": "",
            "priority": "", "headers": "{}", "expires": "", "expire_seconds": "", "start_time": "",
            "enabled": "y", "description": ""}
    data.update(overrides)
    return data


# -- the admin, a real beat and a real worker ---------------------------------------------
def test_admin_form_schedule_runs_edit_applies_within_5s_and_disable_stops(
        app, admin_client, redis_client, probe_worker, beat):
    with app.app_context():
        slow = admin_create_interval(admin_client, 1, "hours")
        fast = admin_create_interval(admin_client, 1)
    token = admin_token(admin_client, "/admin/periodictask/new/")
    response = admin_client.post("/admin/periodictask/new/", data={
        **task_form("probe-admin", "admin", interval=str(fast)), "csrf_token": token})
    assert response.status_code == 302, form_errors(response)

    process = beat()
    seen = wait_for(lambda: len(runs(redis_client, "admin")) >= 2, 30)
    assert seen, beat_log(process)[-3000:]
    # The schedule's name travels in the headers and lands in the results table (PITFALLS 7).
    assert {run["periodic_task_name"] for run in runs(redis_client, "admin")} == {"probe-admin"}
    with app.app_context():
        first_id = runs(redis_client, "admin")[0]["id"]
        row = wait_for(lambda: db.session.scalar(select(TaskResult).where(
            TaskResult.task_id == first_id, TaskResult.state == "SUCCESS")), 10)
        assert row is not None and row.periodic_task_name == "probe-admin"
        task_id = db.session.scalar(select(PeriodicTask.id).where(PeriodicTask.name == "probe-admin"))
        db.session.remove()

    # Edit in the admin: every hour -> no more runs; then back to every second: applied in < 5 s.
    edit_url = f"/admin/periodictask/edit/?id={task_id}"
    token = admin_token(admin_client, edit_url)
    response = admin_client.post(edit_url, data={**task_form("probe-admin", "admin", interval=str(slow)),
                                                 "csrf_token": token})
    assert response.status_code == 302, form_errors(response)
    time.sleep(2.5)  # the change is applied within the check interval; let a run in flight land
    count = len(runs(redis_client, "admin"))
    time.sleep(3)
    assert len(runs(redis_client, "admin")) == count, "the hourly schedule still ran every second"

    token = admin_token(admin_client, edit_url)
    edited_at = time.time()
    response = admin_client.post(edit_url, data={
        **task_form("probe-admin", "admin-fast", interval=str(fast)), "csrf_token": token})
    assert response.status_code == 302
    assert wait_for(lambda: runs(redis_client, "admin-fast"), 15), beat_log(process)[-3000:]
    assert runs(redis_client, "admin-fast")[0]["at"] - edited_at < 5.0

    # The bulk "disable" action (one UPDATE for all rows) stops it.
    token = admin_token(admin_client, "/admin/periodictask/")
    response = admin_client.post("/admin/periodictask/action/", data={
        "action": "disable", "rowid": [str(task_id)], "csrf_token": token})
    assert response.status_code == 302
    time.sleep(2.5)
    count = len(runs(redis_client, "admin-fast"))
    time.sleep(3)
    assert len(runs(redis_client, "admin-fast")) == count, "disabled task still runs"
    # What ran was written back: run count and last run (PITFALLS 15).
    with app.app_context():
        row = db.session.get(PeriodicTask, task_id)
        total = len(runs(redis_client, "admin")) + len(runs(redis_client, "admin-fast"))
        assert row.total_run_count == total
        assert row.last_run_at is not None
    assert process.poll() is None
