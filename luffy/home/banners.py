"""The banner list cache: Redis (through Flask-Caching) kept consistent with the database,
and a per-process copy that is trusted for at most ``BANNER_LOCAL_TTL`` seconds.

Reads: the process copy while it is fresh, else Redis, else one request rebuilds from the
database under a Redis lock while the others serve their stale copy or wait briefly.
Writes: any commit that touched a banner rebuilds Redis *after* the commit (see
``watch_banner_writes``), under the same lock, so a slower rebuild never writes older data
over a newer one. Celery beat refreshes it periodically and the Redis entry has a TTL.
Redis down: read the database, log a warning, and skip Redis for a second between tries.
"""

import contextlib
import json
import logging
import threading
import time

from flask import current_app, has_app_context
from redis.exceptions import LockError, RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from luffy.extensions import cache, db
from luffy.metrics import count
from luffy.models import Banner
from luffy.redis_store import get_redis
from luffy.responses import SUCCESS

CACHE_KEY = "home:banners"  # stored as luffy:cache:home:banners
LOCK_KEY = "luffy:lock:home:banners"
LOCK_SECONDS = 5
WAIT_FOR_REBUILD_SECONDS = 0.5
REDIS_RETRY_AFTER_SECONDS = 1.0
# Labels of the banner_cache counter (GET /metrics); counting costs no Redis round trip.
PROCESS_HIT = {"result": "hit", "layer": "process"}
REDIS_HIT = {"result": "hit", "layer": "redis"}
REDIS_MISS = {"result": "miss", "layer": "redis"}

log = logging.getLogger(__name__)


def load_banners_from_database():
    """The visible banners, as plain dicts, read with a session of their own."""
    limit = current_app.config["BANNER_COUNT"]
    with Session(db.engine) as session:
        return [banner.to_dict() for banner in session.scalars(Banner.visible(limit))]


def rebuild_lock():
    """The lock one rebuilder holds (a redis-py Lock: it deletes the key only if still ours)."""
    return get_redis().lock(LOCK_KEY, timeout=LOCK_SECONDS, thread_local=False)


def release(lock):
    """Release ``lock``; one that ran out meanwhile is someone else's now and stays."""
    with contextlib.suppress(LockError):
        lock.release()


class BannerCache:
    """One per app and process; thread-safe for gthread workers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._banners = None
        self._body = None
        self._checked_at = 0.0
        self._redis_down_until = 0.0

    # -- reading -----------------------------------------------------------------------
    def banners(self):
        """The banner list (list of dicts)."""
        self._refresh_if_stale()
        return self._banners

    def api_body(self):
        """The banner API's JSON body, serialized once per change."""
        self._refresh_if_stale()
        return self._body

    def _refresh_if_stale(self):
        now = time.monotonic()
        if (
            self._banners is not None
            and now - self._checked_at < current_app.config["BANNER_LOCAL_TTL"]
        ):
            count("banner_cache", PROCESS_HIT)
            return
        # Only one thread refreshes; the others keep serving the copy they have.
        if not self._lock.acquire(blocking=self._banners is None):
            count("banner_cache", PROCESS_HIT)
            return
        try:
            if (
                self._banners is not None
                and now - self._checked_at < current_app.config["BANNER_LOCAL_TTL"]
            ):
                count("banner_cache", PROCESS_HIT)
                return
            self._store_locally(self._read_shared())
        finally:
            self._lock.release()

    def _read_shared(self):
        if time.monotonic() < self._redis_down_until:
            count("banner_cache", REDIS_MISS)
            return load_banners_from_database()
        try:
            banners = cache.get(CACHE_KEY)
            count("banner_cache", REDIS_MISS if banners is None else REDIS_HIT)
            if banners is None:
                banners = self._rebuild_on_miss()
            return banners
        except RedisError as error:
            count("banner_cache", REDIS_MISS)
            self._note_redis_down(error)
            return load_banners_from_database()

    def _rebuild_on_miss(self):
        """One process rebuilds the missing entry; the others do not all query the database."""
        lock = rebuild_lock()
        if lock.acquire(blocking=False):
            try:
                return self._write_shared(load_banners_from_database())
            finally:
                release(lock)
        if self._banners is not None:
            return self._banners  # someone else is rebuilding: a stale copy for now
        deadline = time.monotonic() + WAIT_FOR_REBUILD_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.02)
            banners = cache.get(CACHE_KEY)
            if banners is not None:
                return banners
        return load_banners_from_database()

    def _write_shared(self, banners):
        cache.set(CACHE_KEY, banners, timeout=current_app.config["BANNER_CACHE_TTL"])
        return banners

    def _store_locally(self, banners):
        body = json.dumps(
            {"code": SUCCESS, "msg": "成功", "results": banners}, ensure_ascii=False
        ).encode()
        self._banners, self._body = banners, body
        self._checked_at = time.monotonic()

    def _note_redis_down(self, error):
        if time.monotonic() >= self._redis_down_until:
            log.warning("Redis unavailable for the banner cache, reading the database: %s", error)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_SECONDS

    # -- writing -----------------------------------------------------------------------
    def rebuild(self):
        """Reload Redis and this process's copy from the database (after a write, or by beat).

        Runs under the rebuild lock so that two rebuilds racing never leave the older read
        in Redis. Returns the banner list, or raises RedisError when Redis is down.
        """
        lock = rebuild_lock()
        if not lock.acquire(blocking=True, blocking_timeout=LOCK_SECONDS, sleep=0.01):
            # A stuck rebuilder: drop the entry so the next reader rebuilds it.
            cache.delete(CACHE_KEY)
            self.forget_local_copy()
            return None
        try:
            banners = self._write_shared(load_banners_from_database())
        finally:
            release(lock)
        with self._lock:
            self._store_locally(banners)
        return banners

    def forget_local_copy(self):
        with self._lock:
            self._banners = None
            self._checked_at = 0.0


def banner_cache() -> BannerCache:
    return current_app.extensions["luffy_banner_cache"]


def rebuild_banner_cache():
    """Rebuild the shared and local banner cache now; logs instead of raising when Redis is down."""
    try:
        return banner_cache().rebuild()
    except RedisError as error:
        banner_cache().forget_local_copy()
        log.warning("Could not rebuild the banner cache, Redis unavailable: %s", error)
        return None


def _session_touches_banners(session, flush_context, instances):
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Banner):
            session.info["banners_changed"] = True
            return


def _bulk_statement_touches_banners(orm_execute_state):
    if (orm_execute_state.is_update or orm_execute_state.is_delete) and any(
        mapper.class_ is Banner for mapper in orm_execute_state.all_mappers
    ):
        orm_execute_state.session.info["banners_changed"] = True


def _rebuild_after_commit(session):
    if session.info.pop("banners_changed", False) and has_app_context():
        rebuild_banner_cache()


def _forget_on_rollback(session, previous_transaction=None):
    session.info.pop("banners_changed", None)


def init_app(app):
    app.extensions["luffy_banner_cache"] = BannerCache()
    watch_banner_writes()


_watching = False


def watch_banner_writes():
    """Rebuild the cache after every commit that wrote a banner, whatever the write path."""
    global _watching
    if _watching:
        return
    _watching = True
    event.listen(Session, "before_flush", _session_touches_banners)
    event.listen(Session, "do_orm_execute", _bulk_statement_touches_banners)
    event.listen(Session, "after_commit", _rebuild_after_commit)
    event.listen(Session, "after_soft_rollback", _forget_on_rollback)
