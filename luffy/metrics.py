"""Application counters: ``count(name, labels, n)`` in memory, summed across processes in Redis.

Hot paths (the banner API, the flash-sale admission) call ``count`` on every request, so it
only adds to a dict under a lock; a background thread per process adds the totals to the
Redis hash ``luffy:metrics:counters`` at most once a second (HINCRBY, so any number of
gunicorn and Celery processes on any number of machines sum correctly). ``GET /metrics``
reads that hash. A process that dies loses at most its last second of counts; when Redis is
down the counts wait in memory and go out with the next successful flush.

Counter names used by Luffy (exposed as ``luffy_<name>_total``): ``tasks`` {name, state},
``banner_cache`` {result: hit|miss, layer}, ``seckill_admissions``, ``seckill_refusals``
{reason}, ``seckill_orders`` {state}.
"""

import atexit
import json
import logging
import os
import threading
import weakref

from celery import signals
from flask.globals import _cv_app
from redis.exceptions import RedisError

from luffy.redis_urls import parse_redis_url, redis_client

COUNTERS_KEY = "luffy:metrics:counters"
FLUSH_INTERVAL_SECONDS = 1.0

log = logging.getLogger(__name__)


def field_for(name, labels):
    """The Redis hash field of one counter: its name and (sorted) label pairs, as JSON."""
    return json.dumps(
        [name, [list(pair) for pair in labels]], ensure_ascii=False, separators=(",", ":")
    )


def parse_field(field):
    name, labels = json.loads(field)
    return name, dict(labels)


class Counters:
    """One per app and process: counts in memory, flushed to Redis by a daemon thread."""

    def __init__(self, redis_url, socket_timeout, interval=FLUSH_INTERVAL_SECONDS, cluster=False):
        self.redis = redis_client(
            parse_redis_url(redis_url, cluster=cluster),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        self.interval = interval
        self._lock = threading.Lock()
        self._pending = {}
        self._thread = None
        self._failing = False
        _all_counters.add(self)

    def add(self, name, labels=None, n=1):
        # Unsorted on the hot path: the flush sorts, and HINCRBY sums keys that differ in order.
        key = (name, tuple(labels.items()) if labels else ())
        with self._lock:
            pending = self._pending
            pending[key] = pending.get(key, 0) + n
        if self._thread is None:
            self._start_flusher()

    def _start_flusher(self):
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._flush_forever, name="luffy-metrics-flush", daemon=True
            )
            self._thread.start()

    def _flush_forever(self):
        stop = threading.Event()
        while not stop.wait(self.interval):
            self.flush()

    def flush(self):
        """Add the pending counts to Redis; keep them for the next try when Redis is down."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return True
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (name, labels), n in pending.items():
                pipe.hincrby(COUNTERS_KEY, field_for(name, sorted(labels)), n)
            pipe.execute()
            self._failing = False
            return True
        except RedisError as error:
            if not self._failing:  # once per outage, not once a second
                log.warning("Could not flush metric counters to Redis (kept for later): %s", error)
            self._failing = True
            with self._lock:
                for key, n in pending.items():
                    self._pending[key] = self._pending.get(key, 0) + n
            return False

    def totals(self):
        """Every counter summed over all processes: {(name, labels tuple): value}."""
        self.flush()
        totals = {}
        for field, value in self.redis.hgetall(COUNTERS_KEY).items():
            try:
                name, labels = parse_field(field)
            except (ValueError, TypeError):
                continue
            totals[(name, tuple(sorted(labels.items())))] = int(value)
        return totals

    def _forget_after_fork(self):
        # A forked child (gunicorn, Celery prefork) must not flush its parent's counts
        # again, and has no flush thread of its own until it counts something.
        self._lock = threading.Lock()
        self._pending = {}
        self._thread = None


_all_counters = weakref.WeakSet()
_default = None


def _after_fork_in_child():
    for counters in list(_all_counters):
        counters._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def counters_for(app=None):
    """The counters of ``app``, else of the current app, else of the first app in this process."""
    if app is None:
        # The context variable itself, not the current_app proxy: this runs on every request.
        context = _cv_app.get(None)
        app = context.app if context is not None else None
    if app is not None:
        return app.extensions.get("luffy_metrics", _default)
    return _default


def count(name, labels=None, n=1):
    """Add ``n`` to the counter ``name`` with ``labels`` (a dict of short strings). Never raises."""
    context = _cv_app.get(None)  # counters_for() inlined: this runs on every banner request
    counters = (
        context.app.extensions.get("luffy_metrics", _default) if context is not None else _default
    )
    if counters is not None:
        counters.add(name, labels, n)


def init_app(app):
    global _default
    counters = Counters(
        app.config["REDIS_URL"],
        app.config["REDIS_SOCKET_TIMEOUT"],
        cluster=app.config.get("REDIS_CLUSTER", False),
    )
    app.extensions["luffy_metrics"] = counters
    if _default is None:
        _default = counters
    connect_task_signals()


# -- Celery task counts -----------------------------------------------------------------------
# Task signals run outside the task's app context (Celery calls them around ``__call__``), so the
# handlers find the counters through the Celery app that made the task.


def _counters_of_task(task):
    flask_app = getattr(getattr(task, "app", None), "flask_app", None)
    return counters_for(flask_app)


def _count_task(task, name, state):
    counters = _counters_of_task(task) if task is not None else counters_for()
    if counters is not None and name:
        counters.add("tasks", {"name": name, "state": state})


def _on_published(sender=None, headers=None, **kwargs):
    _count_task(None, sender or (headers or {}).get("task"), "SENT")


def _on_prerun(sender=None, **kwargs):
    _count_task(sender, getattr(sender, "name", None), "STARTED")


def _on_success(sender=None, **kwargs):
    _count_task(sender, getattr(sender, "name", None), "SUCCESS")


def _on_failure(sender=None, **kwargs):
    _count_task(sender, getattr(sender, "name", None), "FAILURE")


def _on_retry(sender=None, **kwargs):
    _count_task(sender, getattr(sender, "name", None), "RETRY")


def _on_revoked(sender=None, request=None, **kwargs):
    name = getattr(sender, "name", None) or getattr(request, "task", None)
    _count_task(sender if hasattr(sender, "app") else None, name, "REVOKED")


def _flush_on_process_exit(**kwargs):
    for counters in list(_all_counters):
        counters.flush()


def _flush_at_exit():
    # A short-lived publisher (`celery call`, a script, a CLI command) exits before the flush
    # thread's next second: its SENT counts would be lost without this last flush. Quietly:
    # logging may already be shut down, and a Redis gone by now is no news.
    for counters in list(_all_counters):
        counters._failing = True
        counters.flush()


atexit.register(_flush_at_exit)


_connected = False


def connect_task_signals():
    """Count tasks sent, started, succeeded, failed, retried and revoked (once per process)."""
    global _connected
    if _connected:
        return
    _connected = True
    signals.after_task_publish.connect(_on_published, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_success.connect(_on_success, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    signals.task_revoked.connect(_on_revoked, weak=False)
    signals.worker_process_shutdown.connect(_flush_on_process_exit, weak=False)
    signals.worker_shutdown.connect(_flush_on_process_exit, weak=False)
