"""The beat scheduler on a clock the test drives, and the real Redis broker's lists it sends to."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from luffy.extensions import db
from luffy.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


class Broker:
    """Reads what beat put on a queue of the real Redis broker (no worker consumes it)."""

    def __init__(self, app):
        self.redis = redis.Redis.from_url(app.extensions["celery"].conf.broker_url)
        self.queues = []

    def queue(self):
        name = f"beat-probe-{uuid.uuid4().hex[:8]}"
        self.queues.append(name)
        return name

    def messages(self, queue):
        return [json.loads(raw) for raw in reversed(self.redis.lrange(queue, 0, -1))]

    def count(self, queue):
        return self.redis.llen(queue)

    def close(self):
        if self.queues:
            self.redis.delete(*self.queues)


@pytest.fixture(name="broker")
def broker_fixture(app):
    if not app.extensions["celery"].conf.broker_url.startswith(("redis://", "rediss://")):
        pytest.skip("reads the Redis broker's lists directly (scheduler logic, broker-independent)")
    broker = Broker(app)
    yield broker
    broker.close()


@pytest.fixture(name="scheduler")
def scheduler_fixture(app):
    """A DatabaseScheduler on a test-driven clock; jumps straight to the next due time."""
    from luffy.beat.scheduler import DatabaseScheduler

    made = []

    def make(start):
        sched = DatabaseScheduler(app.extensions["celery"], lazy=True)
        sched._seeded = True  # these tests want only their own rows
        sched.clock = Clock(start)
        sched.max_interval = 3600.0
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.close()


def add(app, name, queue, schedule, **fields):
    with app.app_context():
        row = PeriodicTask(
            name=name,
            task="tests.beat_probe",
            args=json.dumps([name]),
            queue=queue,
            **{schedule_field(schedule): schedule},
            **fields,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def schedule_field(schedule):
    return {
        IntervalSchedule: "interval",
        CrontabSchedule: "crontab",
        ClockedSchedule: "clocked",
        SolarSchedule: "solar",
    }[type(schedule)]


def drive(sched, until, watch):
    """Tick, moving the clock to each wait beat asks for; returns {queue: [send times]}."""
    sent = {queue: [] for queue in watch}
    seen = {queue: 0 for queue in watch}
    for _ in range(100000):
        wait = sched.tick()
        for queue in watch:
            count = watch[queue]()
            sent[queue].extend([sched.clock.now] * (count - seen[queue]))
            seen[queue] = count
        if sched.clock.now >= until:
            return sent
        sched.clock.now = min(until, sched.clock.now + timedelta(seconds=max(wait, 0.001)))
    raise AssertionError("clock never reached the end")


def utc(*args):
    return datetime(*args, tzinfo=UTC)
