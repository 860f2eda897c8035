"""Beat applies edits incrementally: each write path, each schedule kind, each kind of edit,
read back from the database on the next tick of a driven clock, without re-reading the
other rows; deletions stop the sends; rows it cannot send are disabled with the reason."""

import json
from datetime import timedelta

import beat_tasks  # noqa: F401  (registers tests.beat_probe in this process)
import pytest
from beat_helpers import add, broker_fixture, drive, scheduler_fixture, utc  # noqa: F401
from conftest import csrf_token_from
from sqlalchemy import delete, text

from luffy.beat.entries import fingerprint, spec_of
from luffy.extensions import db
from luffy.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

START = utc(2027, 3, 1, 8)


def tick_after(sched, seconds):
    """Move the driven clock on and tick once."""
    sched.clock.now += timedelta(seconds=seconds)
    return sched.tick()


def row(app, row_id):
    with app.app_context():
        task = db.session.get(PeriodicTask, row_id)
        return None if task is None else (task.enabled, task.disabled_reason, spec_of(task))


# -- one tick: an edit is applied on the next look at the change log ----------------------
def test_an_edited_row_is_applied_within_one_tick(app, broker, scheduler):
    queue = broker.queue()
    row_id = add(app, "edited", queue, IntervalSchedule(every=1, period="hours"), last_run_at=START)
    sched = scheduler(START)
    sched.tick()
    assert broker.count(queue) == 0
    with app.app_context():
        task = db.session.get(PeriodicTask, row_id)
        task.interval = IntervalSchedule(every=10, period="seconds")
        task.args = json.dumps(["after-edit"])
        db.session.commit()
    # The last run was at START: every 10 s is due at START + 10 s, on the first tick there.
    tick_after(sched, 10)
    assert [m["headers"]["argsrepr"] for m in broker.messages(queue)] == ["['after-edit']"]


# -- every kind of edit on every schedule kind, incrementally -------------------------------
SCHEDULES = {
    "interval": (
        lambda: IntervalSchedule(every=30, period="minutes"),
        lambda s: setattr(s, "every", 45),
    ),
    "crontab": (
        lambda: CrontabSchedule(minute="0", hour="9", timezone="Asia/Tokyo"),
        lambda s: setattr(s, "hour", "10"),
    ),
    "clocked": (
        lambda: ClockedSchedule(clocked_time=START + timedelta(days=1)),
        lambda s: setattr(s, "clocked_time", START + timedelta(days=2)),
    ),
    "solar": (
        lambda: SolarSchedule(event="sunrise", latitude=31.23, longitude=121.47),
        lambda s: setattr(s, "event", "sunset"),
    ),
}


def edit(app, row_id, operation, change_schedule):
    with app.app_context():
        task = db.session.get(PeriodicTask, row_id)
        if operation == "update-task":
            task.args = json.dumps(["updated"])
        elif operation == "update-schedule":
            change_schedule(task.schedule_row)
        elif operation == "disable":
            task.enabled = False
        elif operation == "enable":
            task.enabled = True
        elif operation == "delete":
            db.session.delete(task)
        db.session.commit()


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize(
    "operation", ["create", "update-task", "update-schedule", "disable", "enable", "delete"]
)
def test_edits_are_applied_incrementally(app, scheduler, kind, operation):
    make_schedule, change_schedule = SCHEDULES[kind]
    bystander = add(app, "bystander", "q", IntervalSchedule(every=1, period="days"))
    row_id = None
    if operation != "create":
        row_id = add(app, "edited", "q", make_schedule(), enabled=operation != "enable")
    sched = scheduler(START)
    sched.change_check_every = 1.0
    sched.tick()
    untouched = sched.entries[bystander]
    if operation == "create":
        row_id = add(app, "edited", "q", make_schedule())
    else:
        edit(app, row_id, operation, change_schedule)
    tick_after(sched, 1)

    assert sched._sweep is None  # applied from the change log, not by re-reading every row
    assert sched.entries[bystander] is untouched
    state = row(app, row_id)
    if state is None or not state[0]:
        assert row_id not in sched.entries
    else:
        assert sched.entries[row_id].fingerprint == fingerprint(state[2])
        assert sched.entries[row_id].due is not None
    expected = operation not in ("disable", "delete")
    assert (row_id in sched.entries) is expected


# -- deleting stops the sends, whatever the write path ----------------------------------------
def admin_post(admin_client, url, data):
    token = csrf_token_from(admin_client.get("/admin/periodictask/").get_data(as_text=True))
    return admin_client.post(url, data={**data, "csrf_token": token})


DELETES = {
    "admin-single": lambda app, client, row_id: admin_post(
        client, "/admin/periodictask/delete/", {"id": str(row_id)}
    ),
    "admin-bulk-action": lambda app, client, row_id: admin_post(
        client, "/admin/periodictask/action/", {"action": "delete", "rowid": [str(row_id)]}
    ),
    "orm-bulk-delete": lambda app, client, row_id: _in_app(
        app, lambda: db.session.execute(delete(PeriodicTask).where(PeriodicTask.id == row_id))
    ),
    "orm-schedule-row": lambda app, client, row_id: _in_app(
        app,
        lambda: db.session.delete(db.session.get(PeriodicTask, row_id).interval),
    ),
}


def _in_app(app, action):
    with app.app_context():
        action()
        db.session.commit()


@pytest.mark.parametrize("path", list(DELETES))
def test_a_deleted_task_stops_running(app, admin_client, broker, scheduler, path):
    queue = broker.queue()
    row_id = add(
        app, "doomed", queue, IntervalSchedule(every=10, period="seconds"), last_run_at=START
    )
    sched = scheduler(START)
    drive(sched, START + timedelta(seconds=10), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 1
    DELETES[path](app, admin_client, row_id)
    drive(sched, START + timedelta(seconds=60), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 1
    assert row_id not in sched.entries


# -- rows beat cannot send are disabled with the reason, and beat goes on --------------------
BAD_ROWS = {
    "args not json": ("args", "not json", "不是合法的 JSON"),
    "args an object": ("args", '{"a": 1}', "必须是JSON 数组"),
    "kwargs not an object": ("kwargs", "[1]", "必须是JSON 对象"),
    "headers a list": ("headers", "[]", "必须是JSON 对象"),
    "args the task refuses": ("args", "[1, 2, 3]", "Celery 拒绝发送"),
}


def test_bad_rows_are_disabled_with_the_reason_and_the_rest_runs(app, broker, scheduler, caplog):
    good_queue, bad_queue = broker.queue(), broker.queue()
    good = add(
        app, "good", good_queue, IntervalSchedule(every=10, period="seconds"), last_run_at=START
    )
    bad = {}
    for name, (column, value, _) in BAD_ROWS.items():
        bad[name] = add(app, name, bad_queue, IntervalSchedule(every=10, period="seconds"))
        with app.app_context():  # written outside the admin, as SQL or another tool would
            db.session.execute(
                text(f"UPDATE periodic_tasks SET {column} = :value WHERE id = :id"),
                {"value": value, "id": bad[name]},
            )
            db.session.commit()
    sched = scheduler(START)
    drive(sched, START + timedelta(seconds=45), {good_queue: lambda: broker.count(good_queue)})

    assert broker.count(good_queue) == 4 and broker.count(bad_queue) == 0
    for name, row_id in bad.items():
        enabled, reason, _ = row(app, row_id)
        assert not enabled and BAD_ROWS[name][2] in reason, (name, reason)
    errors = [r.getMessage() for r in caplog.records if "cannot be sent" in r.getMessage()]
    assert len(errors) == len(BAD_ROWS)  # each logged once, not on every tick
    assert row(app, good)[0] is True


def test_an_expired_task_is_disabled_and_says_so(app, broker, scheduler):
    queue = broker.queue()
    row_id = add(
        app,
        "expiring",
        queue,
        IntervalSchedule(every=10, period="seconds"),
        last_run_at=START,
        expires=START + timedelta(seconds=25),
    )
    sched = scheduler(START)
    drive(sched, START + timedelta(seconds=60), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 2  # at 10 s and 20 s; 30 s is past the expiry
    enabled, reason, _ = row(app, row_id)
    assert not enabled and "已过期" in reason


def test_a_broker_failure_is_retried_not_blamed_on_the_row(app, broker, scheduler, redis_port):
    from conftest import free_port
    from kombu import Connection, Producer

    queue = broker.queue()
    row_id = add(app, "patient", queue, IntervalSchedule(every=60, period="seconds"))
    sched = scheduler(START + timedelta(seconds=61))
    live = sched.producer
    dead = Connection(f"redis://127.0.0.1:{free_port()}/1", connect_timeout=0.5)
    sched.producer = Producer(dead, auto_declare=False)
    try:
        sched.tick()
    finally:
        sched.producer = live
        dead.release()
    assert broker.count(queue) == 0 and row_id in sched.entries
    sched.sync()
    assert row(app, row_id)[:2] == (True, None)
    tick_after(sched, 5)  # retried once the broker answers
    assert broker.count(queue) == 1
