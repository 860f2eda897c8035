"""What the monitoring dashboard and /metrics show, each section bounded in time.

Live state (workers, queues) comes from inspect calls and the broker; history comes from
the task results table, never from memory (it grows, and is lost on restart). Every section
runs in a thread of its own with a deadline, so a worker or broker that does not answer costs
at most the deadline and the section says why instead of hanging the page. Sections whose source is
another feature (beat, flash sale, task results) answer "not available" while it is missing.
"""

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

from flask import current_app
from kombu.exceptions import ChannelError
from sqlalchemy import select

import luffy.result_queries as result_queries
from config import TASK_QUEUES
from luffy.beat.keys import LAST_TICK_KEY, LOCK_KEY
from luffy.extensions import db
from luffy.models.base import as_utc
from luffy.redis_store import get_redis

log = logging.getLogger(__name__)

# The whole dashboard answer must come back within 2 s, whatever is down.
SECTION_DEADLINE_SECONDS = 1.6
KNOWN_WORKERS_KEY = "luffy:monitor:workers"  # hostname -> unix time last seen
FORGET_WORKER_AFTER_SECONDS = 24 * 3600
FAILURES_SHOWN = 10
THROUGHPUT_MINUTES = 60


class Unavailable(Exception):
    """A section's source is missing or does not answer; the message is shown instead."""


def describe(error):
    if isinstance(error, Unavailable):
        return str(error)
    return f"{type(error).__name__}: {error}"[:300]


def call_with_deadline(seconds, fn, *args, app=None, **kwargs):
    """``fn(*args, **kwargs)`` in a daemon thread (in ``app``'s context when given); raises
    Unavailable when it takes longer than ``seconds``. A late call finishes on its own, bounded
    by the socket timeouts of what it talks to."""
    box = {}

    def run():
        try:
            if app is None:
                box["value"] = fn(*args, **kwargs)
            else:
                with app.app_context():
                    box["value"] = fn(*args, **kwargs)
        except BaseException as error:  # handed to the caller, which decides
            box["error"] = error

    thread = threading.Thread(target=run, name="luffy-monitor", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Unavailable(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def collect(sections, seconds=SECTION_DEADLINE_SECONDS):
    """Run every ``{name: fn}`` in parallel within ``seconds``: {name: {ok, data | error}}."""
    app = current_app._get_current_object()
    threads, boxes = {}, {}
    for name, fn in sections.items():
        boxes[name] = box = {}

        def run(fn=fn, box=box):
            try:
                with app.app_context():
                    box["data"] = fn()
            except Exception as error:  # the section shows the error instead of failing the page
                box["error"] = describe(error)

        threads[name] = threading.Thread(target=run, name=f"luffy-monitor-{name}", daemon=True)
        threads[name].start()
    deadline = time.monotonic() + seconds
    answer = {}
    for name, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        box = boxes[name]
        if thread.is_alive():
            answer[name] = {"ok": False, "error": f"no answer within {seconds:g} s"}
        elif "error" in box:
            answer[name] = {"ok": False, "error": box["error"]}
        else:
            answer[name] = {"ok": True, "data": box["data"]}
    return answer


# -- the broker -------------------------------------------------------------------------------


def celery_app():
    return current_app.extensions["celery"]


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
    timeout = timeout or current_app.config["MONITOR_INSPECT_TIMEOUT"]
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
                try:
                    channel.close()
                except Exception:  # a channel the broker closed after NOT_FOUND
                    pass
            lengths[name] = {
                "messages": int(messages),
                "consumers": int(consumers) if counts_consumers else None,
            }
    return lengths


# -- workers ----------------------------------------------------------------------------------


def inspect_workers(timeout=None):
    """Every worker that answers, with pool size, active/reserved/scheduled tasks and processed counts,
    plus workers seen in the last day that no longer answer (offline)."""
    started = time.monotonic()
    timeout = timeout or current_app.config["MONITOR_INSPECT_TIMEOUT"]
    check_broker(timeout)
    app = current_app._get_current_object()
    calls = {}
    for method in ("stats", "active", "reserved", "scheduled"):
        # One thread per call: each inspect waits its full timeout for replies.
        calls[method] = _start_inspect(app, method, timeout)
    replies = {}
    for method, (thread, box) in calls.items():
        thread.join(timeout + 0.5)
        replies[method] = box.get("value") or {}
    stats, active, reserved = replies["stats"], replies["active"], replies["reserved"]
    scheduled = replies["scheduled"]
    now = time.time()
    workers = []
    for hostname in sorted(set(stats) | set(active) | set(reserved) | set(scheduled)):
        info = stats.get(hostname) or {}
        pool = info.get("pool") or {}
        workers.append(
            {
                "hostname": hostname,
                "online": True,
                # "celery.concurrency.prefork:TaskPool" -> "prefork"
                "pool": pool.get("implementation", "").split(":")[0].rsplit(".", 1)[-1] or None,
                "concurrency": pool.get("max-concurrency"),
                "processes": len(pool.get("processes") or []) or None,
                "processed": sum((info.get("total") or {}).values()),
                "active": [_task_brief(task) for task in active.get(hostname) or []],
                "reserved": [_task_brief(task) for task in reserved.get(hostname) or []],
                # Tasks with a countdown or eta wait in the worker's memory until they are due.
                "scheduled": [
                    dict(_task_brief(entry.get("request") or {}), eta=entry.get("eta"))
                    for entry in scheduled.get(hostname) or []
                ],
            }
        )
    online = {worker["hostname"] for worker in workers}
    # The inspections took most of the section's time; the offline list (from Redis) gets what
    # is left, so a slow or silent Redis costs the list of past workers, not the live ones.
    left = SECTION_DEADLINE_SECONDS - (time.monotonic() - started) - 0.15
    try:
        workers.extend(call_with_deadline(max(0.05, left), _remember_workers, online, now, app=app))
    except Unavailable as error:
        log.warning("Offline workers not listed, Redis too slow: %s", error)
    return workers


def _start_inspect(app, method, timeout):
    box = {}

    def run():
        try:
            box["value"] = getattr(
                app.extensions["celery"].control.inspect(timeout=timeout), method
            )()
        except Exception as error:
            box["error"] = error

    thread = threading.Thread(target=run, name=f"luffy-inspect-{method}", daemon=True)
    thread.start()
    return thread, box


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
    """Note who answered; return the workers seen in the last day that did not (offline)."""
    try:
        redis = get_redis()
        if online:
            redis.hset(KNOWN_WORKERS_KEY, mapping={hostname: now for hostname in online})
        known = redis.hgetall(KNOWN_WORKERS_KEY)
    except Exception as error:  # the live list still stands without the memory of past ones
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


def workers_online(timeout=None):
    """How many workers answer a ping (0 when the broker is down)."""
    timeout = timeout or current_app.config["MONITOR_INSPECT_TIMEOUT"]
    check_broker(timeout)
    return len(celery_app().control.ping(timeout=timeout) or [])


def control(command, destination, timeout=None, **arguments):
    """Send a control command to the named workers and return their replies ({host: reply})."""
    timeout = timeout or current_app.config["MONITOR_INSPECT_TIMEOUT"]
    check_broker(timeout)
    replies = (
        celery_app().control.broadcast(
            command,
            arguments=arguments,
            destination=destination,
            reply=True,
            timeout=timeout,
        )
        or []
    )
    merged = {}
    for reply in replies:
        merged.update(reply)
    return merged


def grow_pool(hostname, n):
    return control("pool_grow", [hostname], n=n)


def shrink_pool(hostname, n):
    return control("pool_shrink", [hostname], n=n)


def set_rate_limit(task_name, rate, hostname=None):
    return control(
        "rate_limit", [hostname] if hostname else None, task_name=task_name, rate_limit=rate
    )


def revoke(task_id, terminate=False):
    """Revoke a task on every worker (SIGTERM it when ``terminate`` and it is running).

    Workers keep the revoked ids in memory (and in their --statedb file when they have one),
    so a task queued now is dropped when a worker picks it up later (a worker without --statedb
    forgets them when it restarts).
    """
    return control("revoke", None, task_id=task_id, terminate=terminate, signal="SIGTERM")


# -- task history from the results table -----------------------------------------------------


def task_result_model():
    try:
        from luffy.models.task_result import TaskResult
    except ImportError as error:
        raise Unavailable("task results table not available") from error
    return TaskResult


def _iso(moment):
    moment = as_utc(moment)
    return moment.isoformat(timespec="seconds") if moment else None


def task_state_counts(now=None):
    """{"last_hour": {state: n}, "last_day": {state: n}} by the time the task was recorded."""
    task_result_model()
    return result_queries.state_counts(db.session, now)


def throughput_per_minute(now=None, minutes=THROUGHPUT_MINUTES):
    """Tasks finished in each of the last ``minutes`` minutes, oldest first (one query)."""
    task_result_model()
    return [
        {"minute": _iso(start), "count": count}
        for start, count in result_queries.throughput_per_minute(db.session, now, minutes)
    ]


def latest_failures(limit=FAILURES_SHOWN):
    task_result_model()
    return [
        {
            "task_id": row.task_id,
            "name": row.task_name,
            "worker": row.worker,
            "date_done": _iso(row.date_done),
            "error": last_line(row.traceback),
        }
        for row in result_queries.latest_failures(db.session, limit)
    ]


def last_line(traceback):
    lines = [line for line in (traceback or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def task_detail(task_id):
    """The results-table row of one task, or None."""
    TaskResult = task_result_model()
    row = db.session.scalar(select(TaskResult).where(TaskResult.task_id == task_id))
    if row is None:
        return None
    return {
        "id": row.id,
        "task_id": row.task_id,
        "name": row.task_name,
        "periodic_task_name": row.periodic_task_name,
        "state": row.state,
        "args": row.args,
        "kwargs": row.kwargs,
        "worker": row.worker,
        "queue": row.queue,
        "retries": row.retries,
        "result": row.result,
        "traceback": row.traceback,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "date_done": _iso(row.date_done),
    }


def task_history():
    return {
        "counts": task_state_counts(),
        "throughput": throughput_per_minute(),
        "failures": latest_failures(),
    }


# -- beat and flash sales (other features' services) -----------------------------------------


def beat_state():
    """Last tick, lock holder and the next five due tasks (luffy.beat.services when present)."""
    try:
        from luffy.beat import services as beat_services
    except ImportError:
        beat_services = None
    if beat_services is not None and hasattr(beat_services, "beat_status"):
        status = dict(beat_services.beat_status() or {})
    else:
        # The keys beat writes are the interface: read them when the service is missing.
        holder, tick = get_redis().mget(LOCK_KEY, LAST_TICK_KEY)
        status = {
            "holder": holder.decode() if holder else None,
            "last_tick": float(tick) if tick else None,
        }
    tick = status.get("last_tick")
    if isinstance(tick, (int, float)):
        status["seconds_since_tick"] = round(time.time() - tick, 1)
        status["last_tick"] = datetime.fromtimestamp(tick, UTC).isoformat(timespec="seconds")
    if beat_services is not None and hasattr(beat_services, "next_due"):
        status["next_due"] = beat_services.next_due(limit=5)
    else:
        status["next_due"] = None  # shown as "not available"
    return plain(status)


def sales_state():
    """Per running sale: stock in Redis and in the database, queued and finished orders."""
    try:
        from luffy.seckill import sales as seckill_services
    except ImportError as error:
        raise Unavailable("flash sale not available") from error
    if not hasattr(seckill_services, "running_sales"):
        raise Unavailable("flash sale not available")
    sales = []
    for sale in seckill_services.running_sales() or []:
        if isinstance(sale, dict) and "sale_id" in sale:
            sales.append({"id": sale["sale_id"], "name": None, "status": plain(sale)})
            continue
        sale_id = sale.get("id") if isinstance(sale, dict) else getattr(sale, "id", sale)
        entry = {"id": sale_id, "name": _sale_name(sale)}
        try:
            entry["status"] = plain(seckill_services.sale_status(sale_id))
        except Exception as error:
            entry["status"] = {"error": describe(error)}
        sales.append(entry)
    return sales


def _sale_name(sale):
    if isinstance(sale, dict):
        return sale.get("name") or sale.get("title") or sale.get("course_name")
    course = getattr(sale, "course", None)
    return getattr(sale, "name", None) or getattr(course, "name", None) or str(sale)


def plain(value):
    """``value`` made JSON-serializable (datetimes as ISO text, objects as text)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return _iso(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    return str(value)


def dashboard():
    """Every section of the dashboard, in parallel, within the deadline."""
    return collect(
        {
            "workers": inspect_workers,
            "queues": queue_lengths,
            "tasks": task_history,
            "beat": beat_state,
            "sales": sales_state,
        }
    )
