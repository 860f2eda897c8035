"""A periodic task from command-line style options (``flask schedule add``), checked the
way the admin form checks it, with messages that say what to type instead."""

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app

from luffy.beat.schedules import ScheduleError, get_zone, validate_crontab_fields
from luffy.beat.services import interval_row, registered_task_names
from luffy.models.base import utcnow
from luffy.models.schedule import ClockedSchedule, CrontabSchedule, PeriodicTask

EVERY = re.compile(r"^\s*(\d+)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)\s*$", re.I)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleInputError(ValueError):
    """Options that do not make a periodic task; the message says why."""


def _json(text, kind, option):
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ScheduleInputError(f"{option} is not JSON: {error}") from error
    if not isinstance(value, kind):
        shape = 'a JSON array, e.g. [1, "a"]' if kind is list else 'a JSON object, e.g. {"a": 1}'
        raise ScheduleInputError(f"{option} must be {shape}")
    return value


def every_seconds(text):
    """``30s``, ``5m``, ``2h``, ``1d`` (or ``90`` seconds) as seconds."""
    if text.strip().isdigit():
        seconds = int(text)
    else:
        match = EVERY.match(text)
        if not match:
            raise ScheduleInputError(
                f"--every {text!r}: write a number and a unit, e.g. 30s, 5m, 2h, 1d"
            )
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)[0].lower()]
    if seconds <= 0:
        raise ScheduleInputError("--every must be at least 1 second")
    return seconds


def cron_row(line, tz_name):
    fields = line.split()
    if len(fields) != 5:
        raise ScheduleInputError(
            f'--cron {line!r}: five fields are needed, "minute hour day month weekday"'
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        validate_crontab_fields(minute, hour, day_of_week, day_of_month, month_of_year, tz_name)
    except ScheduleError as error:
        raise ScheduleInputError(f"--cron {line!r} ({tz_name}): {error}") from error
    return CrontabSchedule(
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        timezone=tz_name,
    )


def clocked_row(text):
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ScheduleInputError(
            f"--at {text!r}: not an ISO time, e.g. 2030-01-02T03:04:05+08:00"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    if moment <= utcnow():
        raise ScheduleInputError(f"--at {text!r} is in the past")
    return ClockedSchedule(clocked_time=moment)


def periodic_task_from_options(session, name, task_name, every, cron, tz, at, args, kwargs, queue):
    """A new ``PeriodicTask`` (not yet added to ``session``); raises ScheduleInputError."""
    chosen = [
        option for option, value in (("--every", every), ("--cron", cron), ("--at", at)) if value
    ]
    if len(chosen) != 1:
        raise ScheduleInputError("give exactly one of --every, --cron or --at")
    if tz and not cron:
        raise ScheduleInputError("--tz goes with --cron only")
    if task_name not in registered_task_names():
        raise ScheduleInputError(
            f"unknown task {task_name!r}: `celery -A tasks inspect registered` lists them"
        )
    task = PeriodicTask(
        name=name,
        task=task_name,
        args=json.dumps(_json(args, list, "--args")),
        kwargs=json.dumps(_json(kwargs, dict, "--kwargs")),
        headers="{}",
        queue=queue or None,
        description="flask schedule add",
    )
    if every:
        task.interval = interval_row(session, every_seconds(every))
    elif cron:
        tz_name = tz or current_app.config["TIMEZONE"]
        try:
            get_zone(tz_name)
        except ScheduleError as error:
            raise ScheduleInputError(f"--tz {tz_name!r}: unknown time zone") from error
        task.crontab = cron_row(cron, tz_name)
    else:
        task.clocked = clocked_row(at)
    return task
