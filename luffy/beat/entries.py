"""A periodic task as beat holds it: built from a flat row, checked once, with its next run.

Shared by the scheduler and the services that show next runs, so both work a row out the
same way. A row that cannot be sent as written (arguments that are not JSON of the right
shape, an unusable schedule) raises ``BadRow`` with a reason the admin shows.
"""

import json
from collections import namedtuple
from datetime import timedelta

from celery.schedules import schedule as interval_schedule

from luffy.beat.schedules import (
    ScheduleError,
    ZonedCrontab,
    clocked,
    schedule_from_key,
    schedule_key,
)
from luffy.models.base import as_utc, utcnow

# The task columns that change what beat sends or when (bookkeeping columns excluded).
TASK_FIELDS = (
    "id",
    "name",
    "task",
    "args",
    "kwargs",
    "queue",
    "routing_key",
    "priority",
    "headers",
    "expires",
    "expire_seconds",
    "one_off",
    "start_time",
    "date_changed",
    "interval_id",
    "crontab_id",
    "clocked_id",
    "solar_id",
)
SCHEDULE_FIELDS = {
    "interval": ("every", "period"),
    "cron": ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone"),
    "clocked": ("clocked_time",),
    "solar": ("event", "latitude", "longitude"),
}
REF_TABLES = (
    ("interval_id", "interval_schedules"),
    ("crontab_id", "crontab_schedules"),
    ("clocked_id", "clocked_schedules"),
    ("solar_id", "solar_schedules"),
)


class BadRow(ValueError):
    """A row beat cannot send as written; the message says why (shown in the admin)."""


def _schedule_labels():
    labels = []
    for prefix, fields in SCHEDULE_FIELDS.items():
        labels += [field if prefix == "clocked" else f"{prefix}_{field}" for field in fields]
    return tuple(labels)


# The flat row beat reads (``luffy.beat.loader`` selects these columns in this order).
SPEC_FIELDS = TASK_FIELDS + ("last_run_at", "total_run_count") + _schedule_labels()
Spec = namedtuple("Spec", SPEC_FIELDS)
_BOOKKEEPING_AT = len(TASK_FIELDS)


def spec_of(task):
    """The flat row for an ORM ``PeriodicTask`` (the same fields beat reads)."""
    values = {field: getattr(task, field) for field in TASK_FIELDS}
    values.update(last_run_at=task.last_run_at, total_run_count=task.total_run_count)
    relations = {"interval": task.interval, "cron": task.crontab, "solar": task.solar}
    relations["clocked"] = task.clocked
    for prefix, fields in SCHEDULE_FIELDS.items():
        row = relations[prefix]
        for field in fields:
            label = field if prefix == "clocked" else f"{prefix}_{field}"
            values[label] = getattr(row, field) if row is not None else None
    return Spec(**values)


def _json(text, kind, label):
    if text == "{}" and kind is dict:
        return {}  # the common case, without the parser
    if text == "[]" and kind is list:
        return []
    try:
        value = json.loads(text) if text else kind()
    except (TypeError, ValueError) as error:
        raise BadRow(f"{label} 不是合法的 JSON：{error}") from error
    if not isinstance(value, kind):
        shape = "JSON 数组" if kind is list else "JSON 对象"
        raise BadRow(f"{label} 必须是{shape}，实际是 {type(value).__name__}")
    return value


def _option_pairs(spec):
    """The apply_async options a row sets besides its headers, as (name, value) pairs."""
    pairs = []
    if spec.queue:
        pairs.append(("queue", spec.queue))
    if spec.routing_key:
        pairs.append(("routing_key", spec.routing_key))
    if spec.priority is not None:
        pairs.append(("priority", spec.priority))
    if spec.expire_seconds:
        pairs.append(("expires", spec.expire_seconds))
    elif spec.expires is not None:
        pairs.append(("expires", as_utc(spec.expires)))
    return tuple(pairs) or None


def fingerprint(spec):
    """A hash of everything about a row that changes what beat sends or when: all its fields
    but the bookkeeping ones (last run, run count)."""
    return hash((spec[:_BOOKKEEPING_AT], spec[_BOOKKEEPING_AT + 2 :]))


def schedule_ref(spec):
    """(schedule table, id) of the row's schedule, or None."""
    for column, table in REF_TABLES:
        value = getattr(spec, column)
        if value is not None:
            return table, value
    return None


class Entry:
    """One enabled periodic task as beat holds it between edits."""

    __slots__ = (
        "id",
        "name",
        "task",
        "args",
        "_kwargs",
        "_headers",
        "_options",
        "schedule",
        "ref",
        "one_off",
        "start_time",
        "expires",
        "date_changed",
        "last_run_at",
        "total_run_count",
        "fingerprint",
        "due",
        "expired",
    )

    def __init__(self, spec, sched, print_=None):
        self.id = spec.id
        self.name = spec.name
        self.task = spec.task
        if not self.task:
            raise BadRow("没有任务名")
        self.args = _json(spec.args, list, "位置参数 (args)")
        # Empty ones are kept as None: 100,000 rows mostly have none, and memory counts.
        self._kwargs = _json(spec.kwargs, dict, "关键字参数 (kwargs)") or None
        self._headers = _json(spec.headers, dict, "消息头 (headers)") or None
        self._options = _option_pairs(spec)
        self.schedule = sched
        self.ref = schedule_ref(spec)
        self.one_off = bool(spec.one_off) or isinstance(sched, clocked)
        self.start_time = as_utc(spec.start_time)
        self.expires = as_utc(spec.expires)
        self.date_changed = as_utc(spec.date_changed) or utcnow()
        self.last_run_at = as_utc(spec.last_run_at)
        self.total_run_count = spec.total_run_count or 0
        self.fingerprint = print_
        self.due = None  # cached next run (aware UTC), None when it never runs again
        self.expired = False

    @property
    def kwargs(self):
        return dict(self._kwargs) if self._kwargs else {}

    @property
    def options(self):
        """apply_async options, made afresh for each send; the row's name travels as the
        ``periodic_task_name`` header."""
        headers = dict(self._headers) if self._headers else {}
        headers["periodic_task_name"] = self.name
        return dict(self._options or (), headers=headers)

    @classmethod
    def build(cls, spec, app=None, nowfun=None, cache=None, print_=None):
        """An entry for ``spec``, its schedule shared through ``cache`` (raises BadRow)."""
        try:
            key = schedule_key(spec)
            sched = cache.get(key) if cache is not None else None
            if sched is None:
                sched = schedule_from_key(key, app=app, nowfun=nowfun)
                if cache is not None:
                    cache[key] = sched
        except (ScheduleError, KeyError, TypeError, ValueError) as error:
            raise BadRow(f"调度无法使用：{error}") from error
        return cls(spec, sched, fingerprint(spec) if print_ is None else print_)

    def finished(self):
        """A one-off or clocked task that ran after its last edit."""
        return (
            self.one_off and self.last_run_at is not None and self.last_run_at >= self.date_changed
        )

    def next_run(self, now):
        """When this entry should be sent next (aware UTC), or None for never."""
        if self.finished():
            return None
        base = self.last_run_at or self.date_changed
        sched = self.schedule
        if isinstance(sched, clocked):
            moment = sched.moment
        elif isinstance(sched, ZonedCrontab):
            after = base
            if self.start_time and self.start_time > after:
                after = self.start_time - timedelta(microseconds=1)
            moment = sched.next_run(after)
        elif isinstance(sched, interval_schedule):
            moment = base + sched.run_every
        else:  # solar: Celery measures from now
            moment = now + sched.remaining_estimate(base)
        if self.start_time and moment < self.start_time:
            moment = self.start_time
        if self.expires is not None and moment > self.expires:
            self.expired = True
            return None
        return moment

    def refresh_due(self, now):
        """Work out and cache the next run; raises BadRow when it cannot be worked out."""
        try:
            self.due = self.next_run(now)
        except (ScheduleError, ValueError, OverflowError) as error:
            self.due = None
            raise BadRow(f"无法计算下次运行时间：{error}") from error
        return self.due
