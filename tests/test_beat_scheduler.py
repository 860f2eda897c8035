"""The scheduler driven by a clock the test moves (no waiting for DST nights), against the
real test database and the real Redis broker; the change marker on every write path; the
config seeding; the admin's validation; the monitoring helpers."""

import uuid
from datetime import UTC, datetime, timedelta

import beat_tasks  # noqa: F401  (registers tests.beat_probe in this process)
import pytest
from beat_helpers import add, broker_fixture, drive, scheduler_fixture, utc  # noqa: F401
from conftest import csrf_token_from
from sqlalchemy import select, text, update

from luffy.beat.changes import current_version
from luffy.extensions import db
from luffy.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from luffy.models.base import as_utc

# -- crontabs in their own zone, across both DST changes ------------------
DST_CASES = [
    # zone, start (UTC), daily "30 1" or "30 2" sends (UTC), the DST night's hourly sends (UTC)
    pytest.param(
        "America/New_York",
        "2",
        utc(2027, 3, 13, 12),
        # 02:30 does not exist on 14 March: it runs once, at 03:30 EDT (07:30Z).
        [utc(2027, 3, 14, 7, 30), utc(2027, 3, 15, 6, 30)],
        # 00:00 EST, 01:00 EST, 03:00 EDT, 04:00 EDT: one hour apart in real time.
        [utc(2027, 3, 14, 5), utc(2027, 3, 14, 6), utc(2027, 3, 14, 7), utc(2027, 3, 14, 8)],
        id="new-york-spring-forward",
    ),
    pytest.param(
        "America/New_York",
        "1",
        utc(2027, 11, 6, 12),
        # 01:30 happens twice on 7 November: it runs once, at the first (EDT, 05:30Z).
        [utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)],
        # 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST: every real hour, the repeated one too.
        [utc(2027, 11, 7, 4), utc(2027, 11, 7, 5), utc(2027, 11, 7, 6), utc(2027, 11, 7, 7)],
        id="new-york-fall-back",
    ),
    pytest.param(
        "Europe/London",
        "1",
        utc(2027, 3, 27, 12),
        # 01:30 does not exist on 28 March: it runs at 02:30 BST (01:30Z).
        [utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 30)],
        [utc(2027, 3, 27, 23), utc(2027, 3, 28, 0), utc(2027, 3, 28, 1), utc(2027, 3, 28, 2)],
        id="london-spring-forward",
    ),
    pytest.param(
        "Europe/London",
        "1",
        utc(2027, 10, 30, 12),
        # 01:30 happens twice on 31 October: once, at 01:30 BST (00:30Z).
        [utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)],
        [utc(2027, 10, 30, 23), utc(2027, 10, 31, 0), utc(2027, 10, 31, 1), utc(2027, 10, 31, 2)],
        id="london-fall-back",
    ),
]


@pytest.mark.parametrize("zone, hour, start, daily_expected, hourly_expected", DST_CASES)
def test_crontab_runs_in_its_own_zone_across_dst(
    app, broker, scheduler, zone, hour, start, daily_expected, hourly_expected
):
    daily_queue, hourly_queue = broker.queue(), broker.queue()
    add(
        app,
        "daily",
        daily_queue,
        CrontabSchedule(minute="30", hour=hour, timezone=zone),
        last_run_at=start,
    )
    add(
        app,
        "hourly",
        hourly_queue,
        CrontabSchedule(minute="0", hour="*", timezone=zone),
        last_run_at=start,
    )
    sched = scheduler(start)
    sent = drive(
        sched,
        start + timedelta(hours=48),
        {
            daily_queue: lambda: broker.count(daily_queue),
            hourly_queue: lambda: broker.count(hourly_queue),
        },
    )

    assert sent[daily_queue] == daily_expected
    night = [
        moment
        for moment in sent[hourly_queue]
        if hourly_expected[0] <= moment <= hourly_expected[-1]
    ]
    assert night == hourly_expected
    hourly = sent[hourly_queue]
    assert all(
        later - earlier == timedelta(hours=1)
        for earlier, later in zip(hourly, hourly[1:], strict=False)
    )
    assert len(hourly) == 48
    # The name of the schedule travels in each message's headers.
    assert {m["headers"]["periodic_task_name"] for m in broker.messages(daily_queue)} == {"daily"}


def test_crontab_timezone_is_the_rows_not_the_apps(app, broker, scheduler):
    start = utc(2027, 6, 1, 0)
    queue = broker.queue()
    add(
        app,
        "tokyo-nine",
        queue,
        CrontabSchedule(minute="0", hour="9", timezone="Asia/Tokyo"),
        last_run_at=start,
    )
    sent = drive(scheduler(start), start + timedelta(days=2), {queue: lambda: broker.count(queue)})
    assert sent[queue] == [
        utc(2027, 6, 2, 0),
        utc(2027, 6, 3, 0),
    ]  # 09:00 JST, app zone is Shanghai


# -- a reload never sends twice ----------------------------------------------
def test_reload_after_a_lagging_database_does_not_send_again(app, broker, scheduler):
    start = utc(2027, 1, 1)
    queue = broker.queue()
    row_id = add(
        app,
        "every-minute",
        queue,
        IntervalSchedule(every=60, period="seconds"),
        last_run_at=start - timedelta(seconds=60),
    )
    sched = scheduler(start)
    sent = drive(sched, start + timedelta(seconds=1), {queue: lambda: broker.count(queue)})
    assert len(sent[queue]) == 1
    # The database loses the write-back (as after a failed sync) and someone edits the row:
    # beat reloads, but what it sent stays sent.
    with app.app_context():
        db.session.execute(
            update(PeriodicTask)
            .where(PeriodicTask.id == row_id)
            .values(
                last_run_at=start - timedelta(seconds=60), total_run_count=0, description="edited"
            )
        )
        db.session.commit()
    sched._loaded_at = None  # a full reload on the next tick
    sent = drive(sched, start + timedelta(seconds=59), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 1
    sent = drive(sched, start + timedelta(seconds=61), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 2


# -- no row is skipped --------------------------------------------------------
def test_every_crontab_row_fires_however_many(app, broker, scheduler):
    start = utc(2027, 2, 1, 10, 0, 30)
    queue = broker.queue()
    with app.app_context():
        for index in range(150):
            db.session.add(
                PeriodicTask(
                    name=f"cron-{index}",
                    task="tests.beat_probe",
                    args="[1]",
                    queue=queue,
                    last_run_at=start,
                    crontab=CrontabSchedule(minute=f"*/{1 + index % 5}", timezone="Asia/Shanghai"),
                )
            )
        db.session.commit()
    expected = sum(
        len([m for m in range(1, 16) if m % (1 + index % 5) == 0]) for index in range(150)
    )
    drive(scheduler(start), start + timedelta(minutes=15), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == expected


# -- an impossible crontab that got into the database --------------------------
def test_an_impossible_crontab_in_the_database_does_not_stop_beat(app, broker, scheduler):
    start = utc(2027, 2, 1)
    queue = broker.queue()
    add(app, "fine", queue, IntervalSchedule(every=10, period="seconds"), last_run_at=start)
    bad_queue = broker.queue()
    bad_id = add(app, "bad", bad_queue, CrontabSchedule(minute="0", hour="0", timezone="UTC"))
    with app.app_context():
        db.session.execute(
            text(
                "UPDATE crontab_schedules SET day_of_month = '31', month_of_year = '2' "
                "WHERE id = (SELECT crontab_id FROM periodic_tasks WHERE id = :id)"
            ),
            {"id": bad_id},
        )
        db.session.commit()
    drive(scheduler(start), start + timedelta(seconds=35), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 3 and broker.count(bad_queue) == 0


# -- in the scheduler: clocked runs once and disables itself --------------------
def test_clocked_runs_once_at_its_moment_then_disables(app, broker, scheduler):
    start = utc(2027, 4, 1, 8)
    queue = broker.queue()
    row_id = add(app, "at-nine", queue, ClockedSchedule(clocked_time=start + timedelta(hours=1)))
    sent = drive(scheduler(start), start + timedelta(hours=3), {queue: lambda: broker.count(queue)})
    assert sent[queue] == [start + timedelta(hours=1)]
    with app.app_context():
        row = db.session.get(PeriodicTask, row_id)
        assert (row.enabled, row.total_run_count) == (False, 1)


# -- every write path marks the schedule changed ------------------------------
def version(app):
    with app.app_context(), db.engine.connect() as connection:
        return current_version(connection)


def test_every_write_path_marks_the_schedule_changed(app, runner, scheduler):
    start = version(app)
    row_id = add(app, "marked", "q", IntervalSchedule(every=5, period="seconds"))  # ORM insert
    assert version(app) == start + 1
    with app.app_context():
        db.session.get(PeriodicTask, row_id).description = "changed"  # ORM attribute edit
        db.session.commit()
        assert version(app) == start + 2
        db.session.execute(update(IntervalSchedule).values(every=7))  # ORM bulk UPDATE
        db.session.commit()
        assert version(app) == start + 3
        db.session.execute(text("UPDATE periodic_tasks SET queue = 'other'"))  # SQL text
        db.session.commit()
        assert version(app) == start + 4
        db.session.rollback()
    assert runner.invoke(args=["schedule", "disable", "marked"]).exit_code == 0  # the CLI
    assert version(app) == start + 5
    # Beat's own bookkeeping is not an edit: no reload storm from writing run times.
    sched = scheduler(utc(2027, 1, 1))
    sched._merge_pending(row_id, {"last_run_at": utc(2027, 1, 1), "runs": 1, "disable": False})
    sched.sync()
    assert version(app) == start + 5
    with app.app_context():
        assert db.session.get(PeriodicTask, row_id).total_run_count == 1


# -- first start: config entries become rows, and admin edits survive later starts ---------
def test_config_entries_become_rows_once_and_edits_survive(app):
    from luffy.beat.services import seed_from_config

    entries = app.extensions["celery"].conf.beat_schedule
    with app.app_context():
        created = seed_from_config(entries)
        assert set(created) == set(entries) and "refresh-banner-cache" in created
        banner = db.session.scalar(
            select(PeriodicTask).where(PeriodicTask.name == "refresh-banner-cache")
        )
        assert banner.task == "tests.home.update_banner".replace("tests.", "tasks.")
        assert banner.interval.seconds == app.config["BANNER_REFRESH_SECONDS"]
        banner.interval = IntervalSchedule(every=5, period="minutes")  # an admin edit
        others = [name for name in entries if name != "refresh-banner-cache"]
        for name in others:  # an admin deletion
            db.session.delete(
                db.session.scalar(select(PeriodicTask).where(PeriodicTask.name == name))
            )
        db.session.commit()

        assert seed_from_config(entries) == []  # the next start
        rows = db.session.scalars(select(PeriodicTask)).unique().all()
        assert [row.name for row in rows] == ["refresh-banner-cache"]
        assert rows[0].interval.seconds == 300


# -- the admin refuses what beat could not run -------------------------------
def admin_post(admin_client, url, data):
    token = csrf_token_from(admin_client.get(url).get_data(as_text=True))
    return admin_client.post(url, data={**data, "csrf_token": token})


CRONTAB = {
    "minute": "0",
    "hour": "4",
    "day_of_week": "*",
    "day_of_month": "*",
    "month_of_year": "*",
    "timezone": "Asia/Shanghai",
}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"day_of_month": "31", "month_of_year": "2"}, "never occurs"),
        ({"day_of_month": "30", "month_of_year": "2"}, "never occurs"),
        ({"minute": "61"}, "crontab 无效"),
        ({"hour": "a-b"}, "crontab 无效"),
        ({"day_of_week": "9"}, "crontab 无效"),
        ({"timezone": "Mars/Olympus"}, "不是有效的选择"),  # WTForms, in the site's language
    ],
)
def test_admin_refuses_a_bad_crontab(app, admin_client, fields, message):
    response = admin_post(admin_client, "/admin/crontabschedule/new/", {**CRONTAB, **fields})
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(CrontabSchedule)) == 0


def test_admin_accepts_a_good_crontab_and_describes_it(app, admin_client):
    response = admin_post(
        admin_client, "/admin/crontabschedule/new/", {**CRONTAB, "day_of_month": "31"}
    )
    assert response.status_code == 302
    page = admin_client.get("/admin/crontabschedule/").get_data(as_text=True)
    assert "04:00" in page  # cron-descriptor's description


def periodic_form(app, **overrides):
    with app.app_context():
        interval = IntervalSchedule(every=10, period="seconds")
        db.session.add(interval)
        db.session.commit()
        interval_id = interval.id
    data = {
        "name": f"t-{uuid.uuid4().hex[:6]}",
        "task": "tests.beat_probe",
        "interval": str(interval_id),
        "crontab": "",
        "clocked": "",
        "solar": "",
        "args": "[1]",
        "kwargs": "{}",
        "queue": "",
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


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"args": "[1,"}, "不是合法的 JSON"),
        ({"args": '{"a": 1}'}, "必须是 JSON 数组"),
        ({"kwargs": "[1]"}, "必须是 JSON 对象"),
        ({"headers": "nope"}, "不是合法的 JSON"),
        ({"task": "tasks.no_such_task"}, "未注册的任务"),
        ({"interval": ""}, "必须且只能选一种"),
        ({"priority": "300"}, "优先级在 0 到 255 之间"),
    ],
)
def test_admin_refuses_a_bad_periodic_task(app, admin_client, overrides, message):
    response = admin_post(admin_client, "/admin/periodictask/new/", periodic_form(app, **overrides))
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(PeriodicTask)) == 0


def test_admin_task_field_offers_registered_task_names(app, admin_client):
    page = admin_client.get("/admin/periodictask/new/").get_data(as_text=True)
    for name in ("tasks.home.update_banner", "tests.beat_probe", "celery.backend_cleanup"):
        assert f'value="{name}"' in page
    assert 'value="celery.chord"' not in page


def test_admin_list_shows_next_run_and_run_now_sends(app, admin_client, broker):
    queue = broker.queue()
    row_id = add(
        app, "listed", queue, CrontabSchedule(minute="0", hour="4", timezone="Asia/Shanghai")
    )
    page = admin_client.get("/admin/periodictask/").get_data(as_text=True)
    assert "04:00:00 +08:00" in page  # the admin shows times in the site's zone (Asia/Shanghai)
    token = csrf_token_from(admin_client.get("/admin/periodictask/").get_data(as_text=True))
    response = admin_client.post(
        "/admin/periodictask/action/",
        data={"action": "run_now", "rowid": [str(row_id)], "csrf_token": token},
    )
    assert response.status_code == 302
    messages = broker.messages(queue)
    assert len(messages) == 1 and messages[0]["headers"]["periodic_task_name"] == "listed"
    with app.app_context():
        assert (
            db.session.get(PeriodicTask, row_id).total_run_count == 0
        )  # an extra run, not the schedule's


def test_admin_refuses_deleting_a_schedule_in_use(app, admin_client):
    add(app, "uses-it", "q", IntervalSchedule(every=3, period="hours"))
    with app.app_context():
        interval_id = db.session.scalar(select(IntervalSchedule.id))
    token = csrf_token_from(admin_client.get("/admin/intervalschedule/").get_data(as_text=True))
    admin_client.post(
        "/admin/intervalschedule/delete/", data={"id": str(interval_id), "csrf_token": token}
    )
    with app.app_context():
        assert db.session.get(IntervalSchedule, interval_id) is not None


# -- for the monitoring page ---------------------------------------------------------------
def test_next_due_and_beat_status(app, redis_client):
    from luffy.beat.services import beat_status, next_due

    add(app, "soon", "q", IntervalSchedule(every=5, period="seconds"))
    add(app, "later", "q", IntervalSchedule(every=1, period="hours"))
    add(app, "off", "q", IntervalSchedule(every=1, period="seconds"), enabled=False)
    with app.app_context():
        due = next_due(limit=5)
        assert [item["name"] for item in due] == ["soon", "later"]
        assert set(due[0]) == {"name", "task", "next_run_at"}
        assert beat_status()["holder"] is None
        redis_client.set("luffy:beat:lock", "host:123:abc")
        redis_client.set("luffy:beat:last_tick", "1700000000.5")
        status = beat_status()
        assert status["holder"] == "host:123:abc" and status["last_tick"] == 1700000000.5


def test_next_due_comes_from_the_running_beats_plan(app, redis_client, scheduler):
    from luffy.beat.services import next_due

    add(app, "soon", "q", IntervalSchedule(every=5, period="seconds"))
    add(app, "later", "q", IntervalSchedule(every=1, period="hours"))
    with app.app_context():
        from_database = next_due(limit=5)
        sched = scheduler(datetime.now(UTC))
        sched.tick()
        assert redis_client.exists("luffy:beat:next_due")
        # The beat's plan is what is answered now (a renamed row shows only after beat sees it).
        db.session.execute(text("UPDATE periodic_tasks SET name = 'renamed' WHERE name = 'soon'"))
        db.session.commit()
        assert next_due(limit=5) == from_database
        redis_client.delete("luffy:beat:last_tick")  # no beat ticking: the database answers
        assert [item["name"] for item in next_due(limit=5)] == ["renamed", "later"]


def test_solar_schedule_has_a_next_run_within_a_day(app, admin_client):
    from luffy.beat.services import next_run_of
    from luffy.models import SolarSchedule

    response = admin_post(
        admin_client,
        "/admin/solarschedule/new/",
        {"event": "sunrise", "latitude": "31.23", "longitude": "121.47"},
    )
    assert response.status_code == 302
    assert (
        admin_post(
            admin_client,
            "/admin/solarschedule/new/",
            {"event": "sunrise", "latitude": "95", "longitude": "0"},
        ).status_code
        == 200
    )
    with app.app_context():
        solar = db.session.scalar(select(SolarSchedule))
        row = PeriodicTask(name="at-sunrise", task="tests.beat_probe", args="[1]", solar=solar)
        db.session.add(row)
        db.session.commit()
        moment = next_run_of(row)
        now = datetime.now(UTC)
        assert now < moment <= now + timedelta(hours=25)


def test_admin_clocked_task_with_start_time_and_expires(app, admin_client):
    from luffy.models import ClockedSchedule

    assert (
        admin_post(
            admin_client, "/admin/clockedschedule/new/", {"clocked_time": "2030-01-02 03:04:05"}
        ).status_code
        == 302
    )
    with app.app_context():
        clocked_id = db.session.scalar(select(ClockedSchedule.id))
    data = periodic_form(
        app,
        interval="",
        clocked=str(clocked_id),
        start_time="2030-01-01 00:00:00",
        expires="2030-02-01 00:00:00",
    )
    assert admin_post(admin_client, "/admin/periodictask/new/", data).status_code == 302
    both = periodic_form(app, name="both", expires="2030-02-01 00:00:00", expire_seconds="60")
    assert "只能填一个" in admin_post(admin_client, "/admin/periodictask/new/", both).get_data(
        as_text=True
    )
    page = admin_client.get("/admin/periodictask/").get_data(as_text=True)
    assert "2030-01-02 03:04:05 +08:00" in page  # the next run of the clocked task
    # Typed in the site's zone (Asia/Shanghai), kept in UTC, shown back the same way.
    with app.app_context():
        clocked = db.session.get(ClockedSchedule, clocked_id)
        task = db.session.scalar(select(PeriodicTask).where(PeriodicTask.name == data["name"]))
        assert as_utc(clocked.clocked_time) == datetime(2030, 1, 1, 19, 4, 5, tzinfo=UTC)
        assert as_utc(task.start_time) == datetime(2029, 12, 31, 16, 0, tzinfo=UTC)
        assert as_utc(task.expires) == datetime(2030, 1, 31, 16, 0, tzinfo=UTC)
    form = admin_client.get(f"/admin/clockedschedule/edit/?id={clocked_id}").get_data(as_text=True)
    assert 'value="2030-01-02 03:04:05"' in form and "站点时区 Asia/Shanghai" in form


def test_admin_times_across_daylight_saving_changes(app, admin_client, monkeypatch):
    from luffy.models import ClockedSchedule

    monkeypatch.setitem(app.config, "TIMEZONE", "America/New_York")
    # 02:30 on 10 March 2030 never happens in New York (clocks jump from 02:00 to 03:00).
    page = admin_post(
        admin_client, "/admin/clockedschedule/new/", {"clocked_time": "2030-03-10 02:30:00"}
    )
    assert "不存在" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ClockedSchedule)) == 0

    # 01:30 on 3 November 2030 happens twice; the second one (EST) is 06:30 UTC. Saving the
    # edit form unchanged keeps that moment instead of moving it to the first 01:30 (EDT).
    second_half_thirty = datetime(2030, 11, 3, 6, 30, tzinfo=UTC)
    with app.app_context():
        row = ClockedSchedule(clocked_time=second_half_thirty)
        db.session.add(row)
        db.session.commit()
        row_id = row.id
    url = f"/admin/clockedschedule/edit/?id={row_id}"
    assert 'value="2030-11-03 01:30:00"' in admin_client.get(url).get_data(as_text=True)
    assert admin_post(admin_client, url, {"clocked_time": "2030-11-03 01:30:00"}).status_code == 302
    with app.app_context():
        assert as_utc(db.session.get(ClockedSchedule, row_id).clocked_time) == second_half_thirty
    # Typed anew, the repeated hour means its first occurrence (EDT, 05:30 UTC).
    assert admin_post(admin_client, url, {"clocked_time": "2030-11-03 01:45:00"}).status_code == 302
    with app.app_context():
        assert as_utc(db.session.get(ClockedSchedule, row_id).clocked_time) == datetime(
            2030, 11, 3, 5, 45, tzinfo=UTC
        )


# -- an idle tick costs the same with 5 rows or 500 ----------------------------------------
@pytest.mark.parametrize("rows", [5, 500])
def test_an_idle_tick_reads_one_row_whatever_the_number_of_rows(app, scheduler, rows):
    from sqlalchemy import event

    with app.app_context():
        interval = IntervalSchedule(every=1, period="days")
        db.session.add_all(
            [
                PeriodicTask(
                    name=f"idle-{index}", task="tests.beat_probe", args="[1]", interval=interval
                )
                for index in range(rows)
            ]
        )
        db.session.commit()
        engine = db.engine
    sched = scheduler(datetime.now(UTC))
    sched.change_check_every = 0.0  # look for edits on every tick
    sched.tick()  # the first load
    assert len(sched.entries) == rows
    statements = []
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for _ in range(3):
            sched.tick()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 3 and all("schedule_versions" in sql for sql in statements), (
        statements
    )


# -- a locked SQLite database is an outage too (without a PostgreSQL server) ---------------
def test_beat_keeps_sending_while_sqlite_is_locked_and_writes_back_after(app, broker, scheduler):
    import sqlite3

    with app.app_context():
        if db.engine.url.get_backend_name() != "sqlite":
            pytest.skip("the test database is not SQLite")
        path = db.engine.url.database
    start = utc(2027, 5, 1)
    queue = broker.queue()
    row_id = add(
        app, "through-lock", queue, IntervalSchedule(every=10, period="seconds"), last_run_at=start
    )
    sched = scheduler(start)
    drive(sched, start + timedelta(seconds=10), {queue: lambda: broker.count(queue)})
    assert broker.count(queue) == 1

    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        sched._loaded_at = None  # a reload is due: it fails on the locked database
        sched.clock.now = start + timedelta(seconds=20)
        sched.tick()
        assert sched._db_down and broker.count(queue) == 2  # still sent, from memory
        assert sched._pending[row_id]["runs"] == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    sched._db_retry_at = 0.0
    sched.clock.now = start + timedelta(seconds=21)
    sched.tick()
    assert not sched._db_down and not sched._pending
    with app.app_context():
        assert db.session.get(PeriodicTask, row_id).total_run_count == 2


def test_next_due_does_not_work_out_a_huge_schedule_without_a_beat(app, monkeypatch):
    from luffy.beat import services

    add(app, "one", "q", IntervalSchedule(every=5, period="seconds"))
    add(app, "two", "q", IntervalSchedule(every=6, period="seconds"))
    with app.app_context():
        assert [item["name"] for item in services.next_due(limit=5)] == ["one", "two"]
        monkeypatch.setattr(services, "NEXT_DUE_SCAN_LIMIT", 1)
        assert services.next_due(limit=5) is None  # the dashboard says "not available"
