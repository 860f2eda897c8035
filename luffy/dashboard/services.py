"""What the monitoring dashboard shows, each section bounded in time, and the worker controls.

Live state (workers, queues) comes from inspect calls and the broker, through the shared
background snapshot of ``luffy.dashboard.live``; history comes from the task results table,
never from memory (Flower's in-memory history grows and dies with the process). Every
section runs in parallel with a deadline, so a worker, broker or database that does not
answer costs at most the deadline and the section says why instead of hanging the page.
"""

from concurrent.futures import ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

import luffy.result_queries as result_queries
from luffy.beat import services as beat_services
from luffy.dashboard import live
from luffy.dashboard.live import Unavailable, celery_app, check_broker
from luffy.extensions import db
from luffy.models.base import as_utc
from luffy.models.task_result import TaskResult
from luffy.seckill import sales as seckill_sales

# The whole dashboard answer must come back within 2 s, whatever is down.
SECTION_DEADLINE_SECONDS = 1.6
FAILURES_SHOWN = 10
THROUGHPUT_MINUTES = 60


def _in_context(app, fn, *args, **kwargs):
    with app.app_context():
        return fn(*args, **kwargs)


def call_with_deadline(seconds, fn, *args, app=None, **kwargs):
    """``fn(*args, **kwargs)`` in another thread, in ``app``'s context (the current app's by
    default); raises Unavailable when it takes longer than ``seconds``. A late call finishes
    on its own, bounded by the socket timeouts of what it talks to."""
    app = app or current_app._get_current_object()
    executor = ThreadPoolExecutor(1, thread_name_prefix="luffy-monitor")
    try:
        return executor.submit(_in_context, app, fn, *args, **kwargs).result(timeout=seconds)
    except FutureTimeout:
        raise Unavailable(f"no answer within {seconds:g} s") from None
    finally:
        executor.shutdown(wait=False)


def collect(sections, seconds=SECTION_DEADLINE_SECONDS, extra=()):
    """Run every ``{name: fn}`` in parallel within ``seconds``: {name: {ok, data | error}}.
    ``extra`` futures (a live snapshot being taken) are waited for within the same deadline."""
    app = current_app._get_current_object()
    executor = ThreadPoolExecutor(len(sections), thread_name_prefix="luffy-monitor")
    futures = {
        name: executor.submit(_in_context, app, live.section, fn) for name, fn in sections.items()
    }
    wait([*futures.values(), *extra], timeout=seconds)
    executor.shutdown(wait=False)
    return {
        name: future.result()
        if future.done()
        else {"ok": False, "error": f"no answer within {seconds:g} s"}
        for name, future in futures.items()
    }


# -- worker controls --------------------------------------------------------------------------


def control(command, destination, timeout=None, **arguments):
    """Send a control command to the named workers and return their replies ({host: reply})."""
    timeout = timeout or live.inspect_timeout()
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

    Workers keep the revoked ids in memory and in their --statedb file (WORKER_STATE_DB), so
    a task queued now is dropped when a worker picks it up later, even after a restart.
    """
    return control("revoke", None, task_id=task_id, terminate=terminate, signal="SIGTERM")


# -- task history from the results table -----------------------------------------------------


def _iso(moment):
    moment = as_utc(moment)
    return moment.isoformat(timespec="seconds") if moment else None


def task_state_counts(now=None):
    """{"last_hour": {state: n}, "last_day": {state: n}} by the time the task was recorded."""
    return result_queries.state_counts(db.session, now)


def throughput_per_minute(now=None, minutes=THROUGHPUT_MINUTES):
    """Tasks finished in each of the last ``minutes`` minutes, oldest first (one query)."""
    return [
        {"minute": _iso(start), "count": count}
        for start, count in result_queries.throughput_per_minute(db.session, now, minutes)
    ]


def latest_failures(limit=FAILURES_SHOWN):
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
    """Who holds the beat lock, when beat last ticked, and the next five due tasks."""
    status = dict(beat_services.beat_status())
    tick = status.get("last_tick")
    if tick is not None:
        status["last_tick"] = datetime.fromtimestamp(tick, UTC).isoformat(timespec="seconds")
    status["next_due"] = beat_services.next_due(limit=5)
    return plain(status)


def sales_state():
    """Per running sale: stock in Redis and in the database, admitted, queued, orders."""
    return [
        {"id": status["sale_id"], "name": None, "status": plain(status)}
        for status in seckill_sales.running_sales()
    ]


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
    """Every section of the dashboard, in parallel, within the deadline.

    Workers and queues come from a fresh live snapshot when it is back in time, else from the
    previous one (its ``as_of`` says when), else they say "loading" (``loading: true``)."""
    state = live.live_state()
    refreshing = state.refresh()
    sections = collect(
        {"tasks": task_history, "beat": beat_state, "sales": sales_state}, extra=[refreshing]
    )
    snapshot = refreshing.result() if refreshing.done() else state.snapshot
    sections.update(snapshot.sections() if snapshot else live.loading_sections())
    return sections
