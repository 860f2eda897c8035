"""Reading a results table of millions of rows: counts that never scan it, and the
dashboard's history panels, each answered from an index.

- ``capped_count``: how many rows match, counted up to a cap (``COUNT`` over a ``LIMIT``),
  so a list page never counts a million rows to say "page 1 of 50,000";
- ``estimated_rows``: PostgreSQL's own estimate of the whole table (``pg_class.reltuples``);
- ``state_counts``, ``throughput_per_minute``, ``latest_failures``: what the monitoring
  dashboard shows, by the indexes ``task_results`` has for them (see the model).
"""

from datetime import timedelta

from sqlalchemy import case, func, literal_column, select, text

from luffy.models.base import as_utc, utcnow
from luffy.models.task_result import TaskResult

STATES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
COUNT_CAP = 10_000


class CappedCount(int):
    """A count that stopped at the cap: shown as "10000+"."""

    def __str__(self):
        return f"{int(self) - 1}+"

    __html__ = __str__


class EstimatedCount(int):
    """The database's estimate of the table's size: shown as "约 1000000"."""

    def __str__(self):
        return f"约 {int(self)}"

    __html__ = __str__


def capped_count(session, where=None, cap=None):
    """Rows matching ``where``, counted up to ``cap`` (a CappedCount beyond it)."""
    cap = COUNT_CAP if cap is None else cap
    inner = select(literal_column("1")).select_from(TaskResult.__table__)
    if where is not None:
        inner = inner.where(where)
    found = session.execute(select(func.count()).select_from(inner.limit(cap + 1).subquery()))
    found = found.scalar() or 0
    return CappedCount(found) if found > cap else found


def estimated_rows(session):
    """PostgreSQL's estimate of the table's rows, or None elsewhere or when never analysed."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    estimate = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = 'task_results'::regclass")
    ).scalar()
    return int(estimate) if estimate is not None and estimate >= 0 else None


def list_count(session, where=None, cap=None):
    """What a list page shows as its total: exact when small, else capped or estimated."""
    cap = COUNT_CAP if cap is None else cap
    if where is None:
        estimate = estimated_rows(session)
        if estimate is not None and estimate > cap:
            return EstimatedCount(estimate)
    return capped_count(session, where, cap)


def state_counts(session, now=None):
    """{"last_hour": {state: n}, "last_day": {state: n}} by the time the task was recorded
    (an index-only range scan of ``(created_at, state)``)."""
    now = as_utc(now) or utcnow()
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    rows = session.execute(
        select(
            TaskResult.state,
            func.sum(case((TaskResult.created_at >= hour_ago, 1), else_=0)),
            func.count(),
        )
        .where(TaskResult.created_at >= day_ago)
        .group_by(TaskResult.state)
    ).all()
    last_hour = dict.fromkeys(STATES, 0)
    last_day = dict(last_hour)
    for state, in_hour, in_day in rows:
        last_hour[state] = int(in_hour or 0)
        last_day[state] = int(in_day or 0)
    return {"last_hour": last_hour, "last_day": last_day}


def throughput_per_minute(session, now=None, minutes=60):
    """[(minute start, tasks finished in it)...] for the last ``minutes`` minutes, oldest
    first (one query over the ``date_done`` index)."""
    now = (as_utc(now) or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    starts = [now - timedelta(minutes=minutes - i) for i in range(minutes + 1)]
    columns = [
        func.sum(
            case(
                ((TaskResult.date_done >= starts[i]) & (TaskResult.date_done < starts[i + 1]), 1),
                else_=0,
            )
        )
        for i in range(minutes)
    ]
    row = session.execute(select(*columns).where(TaskResult.date_done >= starts[0])).one()
    return [(starts[i], int(value or 0)) for i, value in enumerate(row)]


def latest_failures(session, limit=10):
    """The last ``limit`` failed results (the ``(state, date_done)`` index, read backwards)."""
    return session.scalars(
        select(TaskResult)
        .where(TaskResult.state == "FAILURE", TaskResult.date_done.is_not(None))
        .order_by(TaskResult.date_done.desc(), TaskResult.id.desc())
        .limit(limit)
    ).all()
