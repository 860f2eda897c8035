"""Workers and queues as last seen, asked in the background: shared by the dashboard and /metrics.

Asking the workers (``inspect``) always costs the full inspect timeout, and the first call of
a process costs more (connections, reply queue). So each app keeps one ``LiveState``: a
snapshot of the workers and queue lengths, refreshed by one background call at a time. The
dashboard asks for a fresh snapshot and waits up to its deadline: when the call is not back in
time (a process's first, cold call) it shows the previous snapshot, or "loading" when there is
none yet, never a false "unavailable". ``/metrics`` never waits: it answers from the snapshot
it has and starts a refresh when that snapshot is old.
"""

import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flask import current_app
from kombu.exceptions import ChannelError

from config import TASK_QUEUES
from luffy.redis_store import get_redis

log = logging.getLogger(__name__)

KNOWN_WORKERS_KEY = "luffy:monitor:workers"  # hostname -> unix time last seen
FORGET_WORKER_AFTER_SECONDS = 24 * 3600
INSPECT_METHODS = ("stats", "active", "reserved", "scheduled")
LOADING = "loading: the first answer from the workers and the broker is on its way"


class Unavailable(Exception):
    """A section's source is missing or does not answer; the message is shown instead."""


def describe(error):
    if isinstance(error, Unavailable):
        return str(error)
    return f"{type(error).__name__}: {error}"[:300]


def celery_app():
    return current_app.extensions["celery"]


def inspect_timeout():
    return current_app.config["MONITOR_INSPECT_TIMEOUT"]


def check_broker(timeout):
    """Raise Unavailable at once when the broker refuses connections (no retries)."""
    try:
        with celery_app().connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=timeout)
    except Exception as error:
        raise Unavailable(f"broker unavailable: {describe(error)}") from error


def queue_lengths(names=TASK_QUEUES, timeout=None):
    """{queue: {"messages": n, "consumers": n | None}} for a Redis or an AMQP broker.

    A passive declare asks the broker without creating anything; a queue that does not
    exist yet (Redis deletes an empty list) counts as empty.
    """
    timeout = timeout or inspect_timeout()
    lengths = {}
    with celery_app().connection_for_read() as connection:
        try:
            connection.ensure_connection(max_retries=0, timeout=timeout)
        except Exception as error:
            raise Unavailable(f"broker unavailable: {describe(error)}") from error
        counts_consumers = connection.transport.driver_type == "amqp"
        not_found = (ChannelError, *connection.channel_errors)
        for name in names:
            channel = connection.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue=name, passive=True)
            except not_found:
                messages, consumers = 0, 0
            finally:
                with contextlib.suppress(Exception):  # a channel the broker closed on NOT_FOUND
                    channel.close()
            lengths[name] = {
                "messages": int(messages),
                "consumers": int(consumers) if counts_consumers else None,
            }
    return lengths


def inspect_workers(timeout=None):
    """Every worker that answers, with pool size, active/reserved/scheduled tasks and processed
    counts, plus the workers seen in the last day that no longer answer (offline)."""
    timeout = timeout or inspect_timeout()
    check_broker(timeout)
    inspect = celery_app().control.inspect(timeout=timeout)
    # The four calls in parallel: each waits its full timeout for replies.
    with ThreadPoolExecutor(len(INSPECT_METHODS), thread_name_prefix="luffy-inspect") as pool:
        replies = dict(
            zip(
                INSPECT_METHODS,
                pool.map(lambda method: getattr(inspect, method)() or {}, INSPECT_METHODS),
                strict=True,
            )
        )
    hostnames = sorted(set().union(*replies.values()))
    workers = [_worker(hostname, replies) for hostname in hostnames]
    return workers + _remember_workers(set(hostnames), time.time())


def _worker(hostname, replies):
    info = replies["stats"].get(hostname) or {}
    pool = info.get("pool") or {}
    return {
        "hostname": hostname,
        "online": True,
        # "celery.concurrency.prefork:TaskPool" -> "prefork"
        "pool": pool.get("implementation", "").split(":")[0].rsplit(".", 1)[-1] or None,
        "concurrency": pool.get("max-concurrency"),
        "processes": len(pool.get("processes") or []) or None,
        "processed": sum((info.get("total") or {}).values()),
        "active": [_task_brief(task) for task in replies["active"].get(hostname) or []],
        "reserved": [_task_brief(task) for task in replies["reserved"].get(hostname) or []],
        # Tasks with a countdown or eta wait in the worker's memory until they are due.
        "scheduled": [
            dict(_task_brief(entry.get("request") or {}), eta=entry.get("eta"))
            for entry in replies["scheduled"].get(hostname) or []
        ],
    }


def _task_brief(task):
    started = task.get("time_start")
    return {
        "id": task.get("id"),
        "name": task.get("name") or task.get("type"),
        "args": str(task.get("args"))[:200],
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
        if isinstance(started, (int, float))
        else None,
    }


def _remember_workers(online, now):
    """Note who answered; return the workers seen in the last day that did not (offline).

    Redis only remembers past workers: when it is down the live list still stands (its
    socket timeout bounds the wait)."""
    try:
        redis = get_redis()
        if online:
            redis.hset(KNOWN_WORKERS_KEY, mapping={hostname: now for hostname in online})
        known = redis.hgetall(KNOWN_WORKERS_KEY)
    except Exception as error:
        log.warning("Could not read the known workers from Redis: %s", error)
        return []
    offline, forget = [], []
    for raw_name, raw_seen in known.items():
        hostname, seen = raw_name.decode(), float(raw_seen)
        if hostname in online:
            continue
        if now - seen > FORGET_WORKER_AFTER_SECONDS:
            forget.append(hostname)
            continue
        offline.append(
            {
                "hostname": hostname,
                "online": False,
                "last_seen": datetime.fromtimestamp(seen, UTC).isoformat(timespec="seconds"),
            }
        )
    if forget:
        with contextlib.suppress(Exception):
            get_redis().hdel(KNOWN_WORKERS_KEY, *forget)
    return sorted(offline, key=lambda worker: worker["hostname"])


def section(fn):
    """{"ok": True, "data": fn()} or {"ok": False, "error": why}."""
    try:
        return {"ok": True, "data": fn()}
    except Exception as error:  # the section shows the error instead of failing the page
        return {"ok": False, "error": describe(error)}


class Snapshot:
    """The workers and queues sections as one background call saw them."""

    def __init__(self, workers, queues):
        self.workers = workers
        self.queues = queues
        self.taken_at = time.monotonic()
        self.as_of = datetime.now(UTC).isoformat(timespec="seconds")

    @property
    def age(self):
        return time.monotonic() - self.taken_at

    @property
    def broker_up(self):
        return self.queues["ok"]

    @property
    def workers_online(self):
        return sum(1 for worker in self.workers.get("data") or [] if worker["online"])

    def sections(self):
        return {
            "workers": dict(self.workers, as_of=self.as_of),
            "queues": dict(self.queues, as_of=self.as_of),
        }


def loading_sections():
    return {
        name: {"ok": False, "loading": True, "error": LOADING} for name in ("workers", "queues")
    }


class LiveState:
    """One app's snapshot of workers and queues, refreshed by one background call at a time."""

    def __init__(self, app):
        self.app = app
        self.snapshot = None
        self._lock = threading.Lock()
        self._future = None
        self._executor = None
        self._pid = None

    def refresh(self):
        """The running refresh, or a new one: a Future of the next Snapshot."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child (gunicorn) starts its own threads
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="luffy-live")
                self._future, self._pid = None, os.getpid()
            if self._future is None or self._future.done():
                self._future = self._executor.submit(self._take)
            return self._future

    def _take(self):
        with self.app.app_context():
            queues = section(queue_lengths)
            workers = section(inspect_workers) if queues["ok"] else dict(queues)
        self.snapshot = Snapshot(workers, queues)
        return self.snapshot

    def latest(self, max_age):
        """The last snapshot without waiting (None before the first); refreshed in the
        background when it is older than ``max_age`` seconds."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.age > max_age:
            self.refresh()
        return snapshot


_create_lock = threading.Lock()


def live_state(app=None):
    """``app``'s LiveState (the current app's by default), made on first use."""
    app = app or current_app._get_current_object()
    state = app.extensions.get("luffy_live_state")
    if state is None:
        with _create_lock:
            state = app.extensions.setdefault("luffy_live_state", LiveState(app))
    return state
