"""``flask schedule add/remove``: a running beat applies them like an admin edit, and bad
input gets a message that says what to type, with nothing written."""

import json
from datetime import UTC, datetime, timedelta

import beat_tasks  # noqa: F401  (registers tests.beat_probe in this process)
import pytest
from sqlalchemy import func, select
from test_beat import QUEUE, beat_log, probe_worker, runs, start_beat, stop_beat, wait_for  # noqa: F401,E501

from luffy.extensions import db
from luffy.models import PeriodicTask
from luffy.models.base import as_utc


def schedule(runner, *args):
    return runner.invoke(args=["schedule", *args])


def count_rows(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(PeriodicTask))


@pytest.mark.usefixtures("probe_worker")
def test_add_is_picked_up_by_a_running_beat_and_remove_stops_it(app, runner, redis_client):
    beat = start_beat()
    try:
        assert wait_for(lambda: redis_client.get("luffy:beat:lock"), 30), beat_log(beat)[-3000:]
        result = schedule(
            runner, "add", "cli-probe", "tests.beat_probe", "--every", "1s",
            "--args", json.dumps(["cli"]), "--queue", QUEUE,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "cli-probe added" in result.output
        assert wait_for(lambda: len(runs(redis_client, "cli")) >= 2, 20), beat_log(beat)[-3000:]
        assert {run["periodic_task_name"] for run in runs(redis_client, "cli")} == {"cli-probe"}

        result = schedule(runner, "remove", "cli-probe")
        assert result.exit_code == 0 and "cli-probe removed" in result.output
        wait_for(lambda: False, 3)  # applied within a second; a run in flight may still land
        count = len(runs(redis_client, "cli"))
        wait_for(lambda: False, 3)
        assert len(runs(redis_client, "cli")) == count, "a removed task still runs"
        assert beat.poll() is None
    finally:
        stop_beat(beat)


def test_add_each_schedule_kind(app, runner):
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    assert schedule(runner, "add", "cron", "tests.beat_probe", "--cron", "*/5 9-18 * * 1-5",
                    "--tz", "Europe/London", "--args", '["x"]').exit_code == 0  # fmt: skip
    assert schedule(runner, "add", "once", "tests.beat_probe", "--at", at.isoformat(),
                    "--args", '["x"]').exit_code == 0  # fmt: skip
    assert schedule(runner, "add", "often", "tests.beat_probe", "--every", "5m",
                    "--args", '["x"]').exit_code == 0  # fmt: skip
    with app.app_context():
        rows = {row.name: row for row in db.session.scalars(select(PeriodicTask)).unique()}
        assert rows["cron"].crontab.expression == "*/5 9-18 * * 1-5"
        assert rows["cron"].crontab.timezone == "Europe/London"
        assert as_utc(rows["once"].clocked.clocked_time) == at
        assert rows["often"].interval.seconds == 300
        assert json.loads(rows["often"].args) == ["x"]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "exactly one of --every, --cron or --at"),
        (["--every", "5s", "--cron", "* * * * *"], "exactly one of"),
        (["--every", "soon"], "e.g. 30s, 5m, 2h, 1d"),
        (["--every", "0s"], "at least 1 second"),
        (["--cron", "61 * * * *"], "--cron '61 * * * *'"),
        (["--cron", "* * *"], "five fields are needed"),
        (["--cron", "0 0 31 2 *"], "--cron '0 0 31 2 *'"),
        (["--cron", "* * * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["--every", "5s", "--tz", "UTC"], "--tz goes with --cron only"),
        (["--at", "tomorrow"], "not an ISO time"),
        (["--at", "2001-01-01T00:00:00+00:00"], "is in the past"),
        (["--every", "5s", "--args", '{"a": 1}'], "--args must be a JSON array"),
        (["--every", "5s", "--args", "[1,"], "--args is not JSON"),
        (["--every", "5s", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
    ],
)
def test_add_refuses_bad_input_with_a_clear_message(app, runner, args, message):
    result = schedule(runner, "add", "bad", "tests.beat_probe", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert count_rows(app) == 0


def test_add_refuses_an_unknown_task_and_a_taken_name(app, runner):
    result = schedule(runner, "add", "x", "tasks.no_such_task", "--every", "5s")
    assert result.exit_code == 2 and "unknown task 'tasks.no_such_task'" in result.output
    assert schedule(runner, "add", "x", "tests.beat_probe", "--every", "5s").exit_code == 0
    result = schedule(runner, "add", "x", "tests.beat_probe", "--every", "9s")
    assert result.exit_code == 2 and "exists already" in result.output
    assert count_rows(app) == 1


def test_remove_refuses_an_unknown_name(app, runner):
    result = schedule(runner, "remove", "nobody")
    assert result.exit_code == 2 and "no periodic task named 'nobody'" in result.output
