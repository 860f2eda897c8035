"""``DatabaseScheduler``: Celery beat reading its schedule from the database.

What it does differently from django-celery-beat (PITFALLS 12-20):
- Edits: a one-row version (``luffy.beat.changes``) is read about once a second; any change
  reloads the schedule, and everything is reloaded every ``BEAT_FULL_RELOAD_SECONDS`` anyway.
  No "due soon" query: every enabled row is in memory, in a heap ordered by its next run.
- Bookkeeping: the run time and count of what was sent are written back at the end of the
  same tick, as increments, on a bare connection (so they never look like an edit). A failed
  write is kept and retried; a reload keeps the later of memory and database, so a reload or
  a takeover never sends a run twice.
- One beat at a time: the Redis lock ``luffy:beat:lock`` is renewed every tick and checked
  right before sending; a waiting beat takes over when it expires.
- Database down: beat keeps the schedule it has, keeps sending, logs, and retries.
- One-off and clocked tasks disable themselves after their run; ``expires`` stops a task;
  ``start_time`` holds it back; crontabs run in their own zone (``luffy.beat.schedules``).
"""

import contextlib
import heapq
import itertools
import json
import time
from datetime import UTC, datetime, timedelta

from celery.beat import Scheduler
from celery.schedules import crontab
from celery.schedules import schedule as interval_schedule
from celery.utils.log import get_logger
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from luffy.beat.changes import current_version
from luffy.beat.lock import BeatLock
from luffy.beat.schedules import ScheduleError, ZonedCrontab, clocked, schedule_from_task
from luffy.models.base import as_utc
from luffy.models.schedule import PeriodicTask

log = get_logger(__name__)
UTC = UTC
SEND_RETRY_SECONDS = 5.0
DB_RETRY_SECONDS = 2.0
# The next runs beat plans, for the monitoring page (luffy.beat.services.next_due): kept
# current by the holder of the lock, so a page never loads every row to find them.
NEXT_DUE_KEY = "luffy:beat:next_due"
NEXT_DUE_PUBLISHED = 20


def entry_options(row):
    """apply_async options for a row; the row's name travels as the ``periodic_task_name`` header."""
    headers = json.loads(row.headers or "{}")
    headers["periodic_task_name"] = row.name
    options = {"headers": headers}
    if row.queue:
        options["queue"] = row.queue
    if row.routing_key:
        options["routing_key"] = row.routing_key
    if row.priority is not None:
        options["priority"] = row.priority
    if row.expire_seconds:
        options["expires"] = row.expire_seconds
    elif row.expires is not None:
        options["expires"] = as_utc(row.expires)
    return options


def fingerprint(row):
    """Everything about a row that changes what beat sends or when (not its bookkeeping)."""
    sched = row.schedule_row
    sched_fields = (
        tuple((column.key, getattr(sched, column.key)) for column in sched.__table__.columns)
        if sched is not None
        else ()
    )
    return (
        row.name,
        row.task,
        row.args,
        row.kwargs,
        row.queue,
        row.routing_key,
        row.priority,
        row.headers,
        as_utc(row.expires),
        row.expire_seconds,
        row.one_off,
        as_utc(row.start_time),
        as_utc(row.date_changed),
        type(sched).__name__,
        sched_fields,
    )


class Entry:
    """One enabled periodic task as beat holds it between reloads."""

    def __init__(self, row, sched, print_):
        self.id = row.id
        self.name = row.name
        self.task = row.task
        self.args = json.loads(row.args or "[]")
        self.kwargs = json.loads(row.kwargs or "{}")
        self.options = entry_options(row)
        self.schedule = sched
        self.one_off = bool(row.one_off) or isinstance(sched, clocked)
        self.start_time = as_utc(row.start_time)
        self.expires = as_utc(row.expires)
        self.date_changed = as_utc(row.date_changed) or datetime.now(UTC)
        self.last_run_at = as_utc(row.last_run_at)
        self.total_run_count = row.total_run_count or 0
        self.fingerprint = print_
        self.due = None  # cached next run (aware UTC), None when it never runs again

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
            return None
        return moment

    def refresh_due(self, now):
        try:
            self.due = self.next_run(now)
        except (ScheduleError, ValueError, OverflowError) as error:
            log.error("beat: cannot work out the next run of %r, skipping it: %s", self.name, error)
            self.due = None
        return self.due


class DatabaseScheduler(Scheduler):
    """The default scheduler of ``celery -A tasks beat`` (``beat_scheduler`` in config.py)."""

    max_interval = 1.0
    sync_every = 5.0

    def __init__(self, app, *args, **kwargs):
        self.flask_app = app.flask_app
        config = self.flask_app.config
        self.lock_timeout = float(config.get("BEAT_LOCK_TIMEOUT", 30))
        self.full_reload_every = float(config.get("BEAT_FULL_RELOAD_SECONDS", 300))
        self.change_check_every = float(config.get("BEAT_CHANGE_CHECK_SECONDS", 1.0))
        self.clock = app.now  # replaced in tests to drive time
        self.entries = {}  # id -> Entry
        self._heap = []
        self._seq = itertools.count()
        self._pending = {}  # id -> {"last_run_at", "runs", "disable"} not yet in the database
        self._version = None
        self._loaded_at = None
        self._checked_at = 0.0
        self._db_retry_at = 0.0
        self._db_down = False
        self._seeded = False
        self._plan_changed = True
        self._waiting_since = None
        with self.flask_app.app_context():
            self.engine = self.flask_app.extensions["sqlalchemy"].engine
        self.lock = BeatLock(self.flask_app.extensions["luffy_redis"], self.lock_timeout)
        super().__init__(app, *args, **kwargs)

    # -- Celery's interface -------------------------------------------------------------
    def setup_schedule(self):
        self._seed()

    @property
    def schedule(self):
        return {entry.name: entry for entry in self.entries.values()}

    @schedule.setter
    def schedule(self, value):
        pass  # the database is the schedule

    @property
    def info(self):
        return (
            f"    . db -> {self.engine.url.render_as_string(hide_password=True)}\n"
            f"    . lock -> luffy:beat:lock ({self.lock_timeout:g}s)"
        )

    def tick(self, *args, **kwargs):
        if not self._hold_lock():
            return min(self.max_interval, max(0.5, self.lock_timeout / 10))
        monotonic = time.monotonic()
        if not self._seeded and monotonic >= self._db_retry_at:
            self._seed()
        self._maybe_reload(monotonic)
        sent = self._send_due()
        if sent or (self._pending and monotonic >= self._db_retry_at):
            self.sync()
        self._note_tick()
        if sent or self._plan_changed:
            self._publish_next_due()
        return self._sleep_time()

    def should_sync(self):
        return bool(self._pending) and time.monotonic() >= self._db_retry_at

    def sync(self):
        """Write the run times, counts and self-disables of what was sent (increments)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            with self.engine.begin() as connection:
                for row_id, change in pending.items():
                    values = {
                        "last_run_at": change["last_run_at"],
                        "total_run_count": PeriodicTask.total_run_count + change["runs"],
                        # Bookkeeping is not an edit: keep date_changed as it was.
                        "date_changed": PeriodicTask.date_changed,
                    }
                    if change["disable"]:
                        values["enabled"] = False
                    connection.execute(
                        update(PeriodicTask).where(PeriodicTask.id == row_id).values(**values)
                    )
        except SQLAlchemyError as error:
            for row_id, change in pending.items():
                self._merge_pending(row_id, change)
            self._database_failed("write back run times", error)
        else:
            self._database_ok()

    def close(self):
        try:
            self.sync()
        finally:
            if self.lock is not None:
                with contextlib.suppress(RedisError):
                    self.lock.release()
            super().close()

    # -- the lock -----------------------------------------------------------------------
    def _hold_lock(self):
        was_held = self.lock.held
        try:
            held = self.lock.acquire()
        except RedisError as error:
            # A Redis blip: the lock we renewed moments ago cannot have expired yet, so keep
            # going until it could have; after that, send nothing (nobody could prove they
            # are the only beat).
            held = self.lock.held = self.lock.still_valid()
            if not held:
                log.error("beat: Redis unavailable, not scheduling until it is back: %s", error)
        if held and not was_held:
            log.info(
                "beat: holding %s as %s; loading the schedule", "luffy:beat:lock", self.lock.value
            )
            self._loaded_at = None  # another beat may have run things: read them back
            self._waiting_since = None
        elif was_held and not held:
            log.warning("beat: lost the lock to %s; standing by", self._holder())
        elif not held and self._waiting_since is None:
            self._waiting_since = time.monotonic()
            log.info("beat: another beat holds the lock (%s); waiting to take over", self._holder())
        return held

    def _holder(self):
        try:
            return self.lock.holder()
        except RedisError:
            return "?"

    def _note_tick(self):
        with contextlib.suppress(RedisError):
            self.lock.note_tick()

    def _publish_next_due(self):
        current = (
            item
            for item in self._heap
            if self.entries.get(item[2].id) is item[2] and item[2].due == item[0]
        )
        plan = [
            {"name": entry.name, "task": entry.task, "next_run_at": due.isoformat()}
            for due, _, entry in heapq.nsmallest(NEXT_DUE_PUBLISHED, current)
        ]
        try:
            self.lock.redis.set(
                NEXT_DUE_KEY, json.dumps(plan), ex=max(60, int(self.full_reload_every) * 2)
            )
        except RedisError:
            return  # published on a later tick
        self._plan_changed = False

    # -- loading ------------------------------------------------------------------------
    def _maybe_reload(self, monotonic):
        if monotonic < self._db_retry_at:
            return
        full = self._loaded_at is None or monotonic - self._loaded_at >= self.full_reload_every
        if not full and monotonic - self._checked_at < self.change_check_every:
            return
        self._checked_at = monotonic
        try:
            with self.engine.connect() as connection:
                version = current_version(connection)
            if full or version != self._version:
                self._reload(version)
                self._loaded_at = monotonic
        except SQLAlchemyError as error:
            self._database_failed("read the schedule", error)
        else:
            self._database_ok()

    def _reload(self, version):
        now = as_utc(self.clock())
        with Session(self.engine) as session:
            rows = (
                session.scalars(select(PeriodicTask).where(PeriodicTask.enabled.is_(True)))
                .unique()
                .all()
            )
            entries = {}
            for row in rows:
                entries[row.id] = self._entry_for(row, now)
        self.entries = {key: entry for key, entry in entries.items() if entry is not None}
        self._version = version
        self._rebuild_heap()
        self._plan_changed = True
        log.info(
            "beat: schedule loaded, %d enabled task(s), version %s", len(self.entries), version
        )

    def _entry_for(self, row, now):
        print_ = fingerprint(row)
        old = self.entries.get(row.id)
        if old is not None and old.fingerprint == print_:
            entry = old
        else:
            try:
                sched = schedule_from_task(row, app=self.app, nowfun=self.clock)
            except ScheduleError as error:
                log.error(
                    "beat: periodic task %r has an unusable schedule, skipping it: %s",
                    row.name,
                    error,
                )
                return None
            entry = Entry(row, sched, print_)
            if old is not None:
                entry.last_run_at, entry.total_run_count = old.last_run_at, old.total_run_count
        # The later of memory and database wins: a reload never forgets a run (PITFALLS 15).
        db_last = as_utc(row.last_run_at)
        if db_last and (entry.last_run_at is None or db_last > entry.last_run_at):
            entry.last_run_at = db_last
        pending = self._pending.get(row.id)
        entry.total_run_count = max(
            entry.total_run_count, (row.total_run_count or 0) + (pending["runs"] if pending else 0)
        )
        entry.refresh_due(now)
        return entry

    def _rebuild_heap(self):
        self._heap = [
            (entry.due, next(self._seq), entry)
            for entry in self.entries.values()
            if entry.due is not None
        ]
        heapq.heapify(self._heap)

    # -- sending ------------------------------------------------------------------------
    def _send_due(self):
        sent = 0
        now = as_utc(self.clock())
        while self._heap and self._heap[0][0] <= now:
            due, _, entry = self._heap[0]
            if self.entries.get(entry.id) is not entry or entry.due != due:
                heapq.heappop(self._heap)  # superseded by a reload
                continue
            if not self.lock.still_valid():
                break  # renewal too old: another beat may hold it by now
            heapq.heappop(self._heap)
            if self._send(entry):
                sent += 1
                entry.last_run_at = now
                entry.total_run_count += 1
                self._merge_pending(
                    entry.id, {"last_run_at": now, "runs": 1, "disable": entry.one_off}
                )
                entry.refresh_due(now)
            else:
                entry.due = now + timedelta(seconds=SEND_RETRY_SECONDS)
            if entry.due is not None:
                heapq.heappush(self._heap, (entry.due, next(self._seq), entry))
        return sent

    def _send(self, entry):
        log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        options = dict(entry.options, headers=dict(entry.options["headers"]))
        try:
            task = self.app.tasks.get(entry.task)
            if task is not None:
                task.apply_async(entry.args, entry.kwargs, producer=self.producer, **options)
            else:
                self.app.send_task(
                    entry.task, entry.args, entry.kwargs, producer=self.producer, **options
                )
        except Exception as error:  # a broker hiccup must not stop beat
            log.error(
                "beat: could not send %r, retrying in %ss: %s",
                entry.name,
                SEND_RETRY_SECONDS,
                error,
            )
            return False
        return True

    def _merge_pending(self, row_id, change):
        old = self._pending.get(row_id)
        if old is None:
            self._pending[row_id] = dict(change)
            return
        old["runs"] += change["runs"]
        old["last_run_at"] = max(old["last_run_at"], change["last_run_at"])
        old["disable"] = old["disable"] or change["disable"]

    def _sleep_time(self):
        wait = self.max_interval
        if self._heap:
            until_due = (self._heap[0][0] - as_utc(self.clock())).total_seconds()
            wait = min(wait, max(until_due, 0.0))
        return wait

    # -- the database going away ----------------------------------------------------------
    def _database_failed(self, doing, error):
        self._db_retry_at = time.monotonic() + DB_RETRY_SECONDS
        if not self._db_down:
            log.error(
                "beat: database unavailable (could not %s); keeping the schedule I have "
                "and retrying every %ss: %s",
                doing,
                DB_RETRY_SECONDS,
                error,
            )
        self._db_down = True

    def _database_ok(self):
        if self._db_down:
            log.warning("beat: database reachable again")
        self._db_down = False

    # -- first start: the config's entries become rows ------------------------------------
    def _seed(self):
        from luffy.beat.services import seed_from_config

        defaults = dict(self.app.conf.beat_schedule or {})
        # What Celery's own beat adds when results expire and the backend cannot expire them.
        if self.app.conf.result_expires and not self.app.backend.supports_autoexpire:
            defaults.setdefault(
                "celery.backend_cleanup",
                {
                    "task": "celery.backend_cleanup",
                    "schedule": crontab("0", "4", "*"),
                    "options": {"expires": 12 * 3600},
                },
            )
        try:
            with self.flask_app.app_context():
                created = seed_from_config(defaults)
        except SQLAlchemyError as error:
            self._database_failed("create the config's schedule rows", error)
            return
        self._seeded = True
        if created:
            log.info("beat: created periodic task rows from config: %s", ", ".join(created))
