"""``DatabaseScheduler``: Celery beat reading its schedule from the database.

What it does differently from django-celery-beat:
- Edits: every write logs what it touched (``luffy.beat.changes``); beat reads the log about
  once a second and re-reads only those rows. Every ``BEAT_FULL_RELOAD_SECONDS`` it re-reads
  all rows anyway, a chunk per tick between sends, so the safety net never delays a send.
- Scale: rows load as plain tuples, rows with equal schedules share one schedule object, and
  the next runs sit in a heap (``luffy.beat.plan``): a tick looks at the earliest only.
- Bookkeeping: the run time and count of what was sent are written back at the end of the
  same tick, as increments, on a bare connection (so they never look like an edit). A failed
  write is kept and retried; a re-read keeps the later of memory and database, so a reload or
  a takeover never sends a run twice.
- Bad rows: a row that cannot be sent as written (arguments that are not JSON, the wrong
  JSON shape, a schedule that never fires, arguments the task refuses) is logged once,
  disabled with the reason (shown in the admin) and skipped; beat goes on. A broker that
  cannot be reached is not the row's fault: the send is retried.
- One beat at a time: the Redis lock (``luffy.beat.lock``) is renewed every tick and checked
  right before sending; a waiting beat takes over when it expires.
- Database down: beat keeps the schedule it has, keeps sending, logs, and retries.
- One-off and clocked tasks disable themselves after their run; an expired task is disabled;
  ``start_time`` holds it back; crontabs run in their own zone (``luffy.beat.schedules``).
"""

import contextlib
import json
import time
from datetime import timedelta

from celery.beat import Scheduler
from celery.utils.log import get_logger
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from luffy.beat import loader
from luffy.beat.bookkeeping import Bookkeeping
from luffy.beat.entries import BadRow
from luffy.beat.keys import APPLIED_VERSION_KEY, LOCK_KEY, NEXT_DUE_KEY, NEXT_DUE_PUBLISHED
from luffy.beat.lock import BeatLock
from luffy.beat.plan import Plan
from luffy.beat.sending import send_group
from luffy.beat.services import seed_config_rows
from luffy.models.base import as_utc

log = get_logger(__name__)
SEND_RETRY_SECONDS = 5.0
SEND_SLICE_SECONDS = 0.5
SEND_GROUP = 100  # messages per publish batch
LOAD_CHUNK = 5000
CHANGE_LOG_KEPT = timedelta(days=1)


class DatabaseScheduler(Bookkeeping, Scheduler):
    """The default scheduler of ``celery -A tasks beat`` (``beat_scheduler`` in config.py)."""

    max_interval = 0.5
    sync_every = 5.0

    def __init__(self, app, *args, **kwargs):
        self.flask_app = app.flask_app
        config = self.flask_app.config
        self.lock_timeout = float(config.get("BEAT_LOCK_TIMEOUT", 30))
        self.full_reload_every = float(config.get("BEAT_FULL_RELOAD_SECONDS", 300))
        self.change_check_every = float(config.get("BEAT_CHANGE_CHECK_SECONDS", 0.5))
        self.reload_chunk = int(config.get("BEAT_RELOAD_CHUNK", 2000))
        self.clock = app.now  # replaced in tests to drive time
        self.plan = Plan(app, lambda: self.clock())
        self._version = None  # the schedule version applied; None: load everything first
        self._checked_at = None  # self.clock() time of the last look at the change log
        self._loaded_at = None  # monotonic time the last full read finished
        self._sweep = None  # [last id read] while re-reading every row in chunks
        self._seeded = False
        self._plan_changed = True
        self._waiting_since = None
        self._init_bookkeeping()
        with self.flask_app.app_context():
            self.engine = self.flask_app.extensions["sqlalchemy"].engine
        self.lock = BeatLock(self.flask_app.extensions["luffy_redis"], self.lock_timeout)
        super().__init__(app, *args, **kwargs)

    # -- Celery's interface -------------------------------------------------------------
    def setup_schedule(self):
        self._seed()

    @property
    def entries(self):
        return self.plan.entries

    @property
    def schedule(self):
        return {entry.name: entry for entry in self.plan.entries.values()}

    @schedule.setter
    def schedule(self, value):
        """Celery's assignments are ignored: the database is the schedule."""

    @property
    def info(self):
        return (
            f"    . db -> {self.engine.url.render_as_string(hide_password=True)}\n"
            f"    . lock -> {LOCK_KEY} ({self.lock_timeout:g}s)"
        )

    def tick(self, *args, **kwargs):
        if not self._hold_lock():
            return min(self.max_interval, max(0.5, self.lock_timeout / 10))
        monotonic = time.monotonic()
        if not self._seeded and monotonic >= self._db_retry_at:
            self._seed()
        if monotonic >= self._db_retry_at:
            self._read_database(monotonic)
        sent = self._send_due()
        if sent or (self._pending and monotonic >= self._db_retry_at):
            self.sync()
        with contextlib.suppress(RedisError):
            self.lock.note_tick()
        if sent or self._plan_changed:
            self._publish_plan()
        return self._sleep_time()

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
            log.info("beat: holding %s as %s; loading the schedule", LOCK_KEY, self.lock.value)
            self._version = None  # another beat may have run things: read them back
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

    def _publish_plan(self):
        plan = [
            {"name": entry.name, "task": entry.task, "next_run_at": entry.due.isoformat()}
            for entry in self.plan.upcoming(NEXT_DUE_PUBLISHED)
        ]
        expiry = max(60, int(self.full_reload_every) * 2)
        try:
            pipe = self.lock.redis.pipeline(transaction=False)
            pipe.set(NEXT_DUE_KEY, json.dumps(plan), ex=expiry)
            pipe.set(APPLIED_VERSION_KEY, self._version or 0, ex=expiry)
            pipe.execute()
        except RedisError:
            return  # published on a later tick
        self._plan_changed = False

    # -- reading the database -------------------------------------------------------------
    def _read_database(self, monotonic):
        now = as_utc(self.clock())
        try:
            if self._version is None:
                self._load_everything(now)
                self._loaded_at = monotonic
            elif self._checked_at is None or not (
                0 <= (now - self._checked_at).total_seconds() < self.change_check_every
            ):
                self._checked_at = now
                self._apply_changes(now)
            if self._sweep is None and monotonic - (self._loaded_at or 0) >= self.full_reload_every:
                self._sweep = [0]
            if self._sweep is not None:
                self._sweep_chunk(now, monotonic)
        except SQLAlchemyError as error:
            self._database_failed("read the schedule", error)
        else:
            self._database_ok()

    def _load_everything(self, now):
        """Every enabled row: at start and when taking over from another beat.

        The stalest rows come first, and what is due is sent after each chunk, so an
        overdue task does not wait for the last of 100,000 rows to load.
        """
        started = time.monotonic()
        with self.engine.connect() as connection:
            version = loader.changes_since(connection, None).version
            kept = set()
            for spec in loader.all_specs(connection):
                self._put(spec, now)
                kept.add(spec.id)
                # A short slice: the rest of the load is waiting (the freshest rows last).
                if len(kept) % LOAD_CHUNK == 0 and self._send_due(slice_seconds=0.1):
                    self.sync()
        for entry_id in set(self.plan.entries) - kept:
            self.plan.remove(entry_id)
        self._version, self._sweep, self._plan_changed = version, None, True
        log.info(
            "beat: schedule loaded, %d enabled task(s), version %s, in %.2fs",
            len(self.plan),
            version,
            time.monotonic() - started,
        )

    def _apply_changes(self, now):
        """Re-read the rows the change log names since the applied version."""
        with self.engine.connect() as connection:
            changes = loader.changes_since(connection, self._version)
            if changes is None:
                return
            ids = set(changes.task_ids)
            for ref in changes.refs:
                ids.update(self.plan.by_ref.get(ref, ()))
            ids.update(loader.tasks_using(connection, changes.refs))
            specs = loader.specs_by_id(connection, ids)
        for spec in specs:
            self._put(spec, now)
        for entry_id in ids - {spec.id for spec in specs}:
            self.plan.remove(entry_id)  # deleted or disabled
        if changes.everything and self._sweep is None:
            self._sweep = [0]  # raw SQL or a bulk insert: re-read every row in the background
        self._version, self._plan_changed = changes.version, True
        log.info("beat: applied schedule version %s (%d row(s) re-read)", changes.version, len(ids))

    def _sweep_chunk(self, now, monotonic):
        """Re-read the next chunk of rows by id; rows missing from it were deleted or disabled."""
        after = self._sweep[0]
        with self.engine.connect() as connection:
            specs = loader.spec_chunk(connection, after, self.reload_chunk)
        last = specs[-1].id if len(specs) == self.reload_chunk else None
        seen = {spec.id for spec in specs}
        for spec in specs:
            self._put(spec, now)
        gone = [
            entry_id
            for entry_id in self.plan.entries
            if entry_id > after and (last is None or entry_id <= last) and entry_id not in seen
        ]
        for entry_id in gone:
            self.plan.remove(entry_id)
        if last is not None:
            self._sweep[0] = last
            return
        self._sweep, self._loaded_at, self._plan_changed = None, monotonic, True
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as connection:
            loader.prune_changes(connection, now - CHANGE_LOG_KEPT)

    def _put(self, spec, now):
        pending = self._pending.get(spec.id)
        try:
            entry = self.plan.put(spec, now, pending["runs"] if pending else 0)
        except BadRow as error:
            self._disable(spec.id, spec.name, spec.date_changed, str(error))
            return
        if entry.due is None:
            self._retire(entry)

    # -- sending ------------------------------------------------------------------------
    def _send_due(self, slice_seconds=SEND_SLICE_SECONDS):
        sent = 0
        now = as_utc(self.clock())
        # A long backlog is sent over several ticks, so edits keep being read in between.
        until = time.monotonic() + slice_seconds
        while self.lock.still_valid() and time.monotonic() < until:
            group = []
            while len(group) < SEND_GROUP:
                entry = self.plan.pop_due(now)
                if entry is None:
                    break
                group.append(entry)
            if not group:
                break
            outcomes = send_group(self.app, self.producer, group, SEND_RETRY_SECONDS)
            for entry, outcome in zip(group, outcomes, strict=True):
                sent += self._settle(entry, outcome, now)
        return sent

    def _settle(self, entry, outcome, now):
        """Book one send's outcome and plan the entry's next run; 1 when it was sent."""
        if outcome is True:
            self._ran(entry, now)
            try:
                entry.refresh_due(now)
            except BadRow as error:
                self.plan.remove(entry.id)
                self._disable(entry.id, entry.name, entry.date_changed, str(error))
                return 1
            if entry.due is None:
                self._retire(entry)
                return 1
        elif outcome is False:
            entry.due = now + timedelta(seconds=SEND_RETRY_SECONDS)
        else:
            self.plan.remove(entry.id)
            self._disable(entry.id, entry.name, entry.date_changed, outcome)
            return 0
        self.plan.push(entry)
        return int(outcome is True)

    def _sleep_time(self):
        if self._sweep is not None:
            return 0.01  # a chunk per tick, sends checked between chunks
        wait = self.max_interval
        first = self.plan.first_due()
        if first is not None:
            wait = min(wait, max((first - as_utc(self.clock())).total_seconds(), 0.0))
        return wait

    # -- first start: the config's entries become rows ------------------------------------
    def _seed(self):
        try:
            with self.flask_app.app_context():
                created = seed_config_rows(self.app)
        except SQLAlchemyError as error:
            self._database_failed("create the config's schedule rows", error)
            return
        self._seeded = True
        if created:
            log.info("beat: created periodic task rows from config: %s", ", ".join(created))
