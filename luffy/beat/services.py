"""Schedule services for the admin, the CLI, beat and monitoring: seeding rows from config,
sending a task now, the next runs, beat's status, crontab descriptions."""

import importlib
import json
import logging
import time
from datetime import datetime, timedelta

from celery.schedules import crontab, schedule, solar
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from luffy.beat.entries import BadRow, Entry, spec_of
from luffy.beat.keys import LAST_TICK_KEY, LOCK_KEY, NEXT_DUE_KEY, NEXT_DUE_PUBLISHED
from luffy.broker import publish
from luffy.extensions import db
from luffy.models.base import utcnow
from luffy.models.schedule import (
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleVersion,
    SolarSchedule,
)
from luffy.redis_store import get_redis

log = logging.getLogger(__name__)
UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
# A plan published by a beat that ticked within this many seconds is trusted.
PUBLISHED_FRESH_SECONDS = 10
NEXT_DUE_SCAN_LIMIT = 2000


# -- first start --------------------------------------------------------------------------
def seed_config_rows(celery_app):
    """Rows for the Celery app's ``beat_schedule`` (and the results cleanup Celery's own beat
    adds when results expire and the backend cannot expire them); returns the names created."""
    defaults = dict(celery_app.conf.beat_schedule or {})
    if celery_app.conf.result_expires and not celery_app.backend.supports_autoexpire:
        defaults.setdefault(
            "celery.backend_cleanup",
            {
                "task": "celery.backend_cleanup",
                "schedule": crontab("0", "4", "*"),
                "options": {"expires": 12 * 3600},
            },
        )
    return seed_from_config(defaults)


def seed_from_config(entries):
    """Create a row for each config ``beat_schedule`` entry never seeded before.

    Names already seeded are remembered, so a row the admin edited is never overwritten and
    one it deleted does not come back. Returns the names created.
    """
    for attempt in range(2):
        try:
            return _seed_once(entries)
        except IntegrityError:
            if attempt:
                raise  # two beats seeding at once: the second try sees the first's rows


def _seed_once(entries):
    created = []
    with Session(db.engine) as session, session.begin():
        version = session.get(ScheduleVersion, 1)
        if version is None:
            version = ScheduleVersion(id=1, version=0, changed_at=utcnow(), seeded="[]")
            session.add(version)
        seeded = set(json.loads(version.seeded or "[]"))
        for name, spec in entries.items():
            if name in seeded:
                continue
            seeded.add(name)
            if session.scalar(select(PeriodicTask.id).where(PeriodicTask.name == name)) is None:
                session.add(periodic_task_from_spec(session, name, spec))
                created.append(name)
        version.seeded = json.dumps(sorted(seeded))
    return created


def periodic_task_from_spec(session, name, spec):
    """A ``PeriodicTask`` for one Celery ``beat_schedule`` entry."""
    options = dict(spec.get("options") or {})
    task = PeriodicTask(
        name=name,
        task=spec["task"],
        args=json.dumps(list(spec.get("args") or ())),
        kwargs=json.dumps(dict(spec.get("kwargs") or {})),
        queue=options.get("queue"),
        routing_key=options.get("routing_key"),
        priority=options.get("priority"),
        headers=json.dumps(options.get("headers") or {}),
        description=spec.get("description", "来自配置 beat_schedule"),
    )
    expires = options.get("expires")
    if isinstance(expires, (int, float)):
        task.expire_seconds = int(expires)
    elif expires is not None:
        task.expires = expires
    sched = spec["schedule"]
    if isinstance(sched, crontab):
        task.crontab = CrontabSchedule(
            minute=str(sched._orig_minute),
            hour=str(sched._orig_hour),
            day_of_week=str(sched._orig_day_of_week),
            day_of_month=str(sched._orig_day_of_month),
            month_of_year=str(sched._orig_month_of_year),
            timezone=current_app.config["TIMEZONE"],
        )
    elif isinstance(sched, solar):
        task.solar = SolarSchedule(event=sched.event, latitude=sched.lat, longitude=sched.lon)
    else:
        seconds = (
            sched.run_every.total_seconds()
            if isinstance(sched, schedule)
            else (sched.total_seconds() if isinstance(sched, timedelta) else float(sched))
        )
        task.interval = interval_row(session, max(1, round(seconds)))
    return task


def interval_row(session, seconds):
    """The interval row for ``seconds`` in its largest whole unit, reusing an identical one."""
    every, period = next((seconds // size, unit) for unit, size in UNITS if seconds % size == 0)
    existing = session.scalar(
        select(IntervalSchedule)
        .where(IntervalSchedule.every == every, IntervalSchedule.period == period)
        .limit(1)
    )
    return existing or IntervalSchedule(every=every, period=period)


# -- task names -----------------------------------------------------------------------------
_imported = False


def registered_task_names():
    """Task names the Celery app knows, after importing the modules config ``imports`` lists."""
    global _imported
    celery = current_app.extensions["celery"]
    if not _imported:
        for module in celery.conf.imports or ():
            try:
                importlib.import_module(module)
            except ImportError as error:
                log.warning("task module %s not importable: %s", module, error)
        _imported = True
    return sorted(
        name
        for name in celery.tasks
        if not name.startswith("celery.") or name == "celery.backend_cleanup"
    )


# -- sending now --------------------------------------------------------------------------
def run_now(task):
    """Send the row's task at once with its arguments and options; returns the task id.

    The schedule is not touched (no last run, no count): this run is extra. Raises BadRow
    when the row's arguments or headers are not what beat could send.
    """
    entry = Entry.build(spec_of(task), app=current_app.extensions["celery"])
    return publish(entry.task, entry.args, entry.kwargs, **entry.options).id


# -- monitoring ---------------------------------------------------------------------------
def next_due(limit=5):
    """The next ``limit`` runs of enabled tasks: [{"name", "task", "next_run_at"}...].

    ``next_run_at`` is an aware UTC datetime. What the running beat published (it keeps its
    next 20 in ``luffy:beat:next_due``); worked out from the database the way beat does it
    when no beat is ticking or more are asked for, up to ``NEXT_DUE_SCAN_LIMIT`` enabled
    rows; beyond that None (a page must not work out 100,000 schedules to show five).
    """
    published = _published_next_due(limit)
    if published is not None:
        return published
    enabled = select(func.count()).select_from(PeriodicTask).where(PeriodicTask.enabled.is_(True))
    if db.session.scalar(enabled) > NEXT_DUE_SCAN_LIMIT:
        return None
    now = utcnow()
    upcoming = []
    for row in db.session.scalars(
        select(PeriodicTask).where(PeriodicTask.enabled.is_(True))
    ).unique():
        moment = next_run_of(row, now)
        if moment is not None:
            upcoming.append({"name": row.name, "task": row.task, "next_run_at": moment})
    upcoming.sort(key=lambda item: item["next_run_at"])
    return upcoming[:limit]


def _published_next_due(limit):
    if limit > NEXT_DUE_PUBLISHED:
        return None
    try:
        plan, last_tick = get_redis().mget(NEXT_DUE_KEY, LAST_TICK_KEY)
    except RedisError:
        return None
    if not plan or not last_tick or time.time() - float(last_tick) > PUBLISHED_FRESH_SECONDS:
        return None
    return [
        {**item, "next_run_at": datetime.fromisoformat(item["next_run_at"])}
        for item in json.loads(plan)[:limit]
    ]


def next_run_of(row, now=None):
    """The next run of one row (aware UTC), or None; worked out the way beat does it."""
    if not row.enabled or row.schedule_row is None:
        return None
    try:
        entry = Entry.build(spec_of(row), app=current_app.extensions["celery"])
        return entry.refresh_due(now or utcnow())
    except BadRow:
        return None


def beat_status():
    """Who holds the beat lock and when beat last ticked.

    {"holder": "host:pid:token" or None, "last_tick": unix time or None,
     "seconds_since_tick": float or None, "redis": True/False}
    """
    try:
        holder, last_tick = get_redis().mget(LOCK_KEY, LAST_TICK_KEY)
    except RedisError as error:
        log.warning("beat status unavailable, Redis down: %s", error)
        return {"holder": None, "last_tick": None, "seconds_since_tick": None, "redis": False}
    last = float(last_tick) if last_tick else None
    return {
        "holder": holder.decode() if holder else None,
        "last_tick": last,
        "seconds_since_tick": round(time.time() - last, 3) if last else None,
        "redis": True,
    }


def describe_crontab(row):
    """A human description of a crontab row, in Chinese (day and month names included)."""
    from luffy.cron_text import describe

    return describe(row.expression)
