"""The queries beat runs: rows as flat tuples (no ORM objects, so 100,000 rows load in
seconds), a chunk of rows by id for the background re-read, and the change log since a
version."""

from sqlalchemy import delete, func, select

from luffy.beat.changes import current_version
from luffy.beat.entries import REF_TABLES, SCHEDULE_FIELDS, SPEC_FIELDS, TASK_FIELDS
from luffy.models.schedule import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleChange,
    SolarSchedule,
)

MODEL_OF_PREFIX = {
    "interval": IntervalSchedule,
    "cron": CrontabSchedule,
    "clocked": ClockedSchedule,
    "solar": SolarSchedule,
}
FOREIGN_KEY_OF_TABLE = {table: column for column, table in REF_TABLES}
# Ids per ``IN (...)`` list, well under every database's bound-parameter limit.
ID_BATCH = 500


def _spec_select():
    columns = [getattr(PeriodicTask, field) for field in TASK_FIELDS]
    columns += [PeriodicTask.last_run_at, PeriodicTask.total_run_count]
    for prefix, model in MODEL_OF_PREFIX.items():
        for field in SCHEDULE_FIELDS[prefix]:
            label = field if prefix == "clocked" else f"{prefix}_{field}"
            columns.append(getattr(model, field).label(label))
    assert tuple(column.key for column in columns) == SPEC_FIELDS  # fingerprint relies on it
    return (
        select(*columns)
        .select_from(PeriodicTask)
        .outerjoin(IntervalSchedule, PeriodicTask.interval_id == IntervalSchedule.id)
        .outerjoin(CrontabSchedule, PeriodicTask.crontab_id == CrontabSchedule.id)
        .outerjoin(ClockedSchedule, PeriodicTask.clocked_id == ClockedSchedule.id)
        .outerjoin(SolarSchedule, PeriodicTask.solar_id == SolarSchedule.id)
        .where(PeriodicTask.enabled.is_(True))
    )


SPECS = _spec_select()


def all_specs(connection):
    """Every enabled row, streamed, the longest since its last run (or edit) first."""
    stalest = func.coalesce(PeriodicTask.last_run_at, PeriodicTask.date_changed)
    return connection.execution_options(yield_per=5000).execute(
        SPECS.order_by(stalest, PeriodicTask.id)
    )


def spec_chunk(connection, after_id, size):
    """Up to ``size`` enabled rows with ids above ``after_id``, in id order."""
    return connection.execute(
        SPECS.where(PeriodicTask.id > after_id).order_by(PeriodicTask.id).limit(size)
    ).all()


def specs_by_id(connection, ids):
    """The enabled rows among ``ids``."""
    ids = sorted(ids)
    rows = []
    for start in range(0, len(ids), ID_BATCH):
        batch = ids[start : start + ID_BATCH]
        rows += connection.execute(SPECS.where(PeriodicTask.id.in_(batch))).all()
    return rows


def tasks_using(connection, refs):
    """Ids of the periodic tasks whose schedule is one of ``refs`` [(table, id)...]."""
    by_table = {}
    for table, row_id in refs:
        by_table.setdefault(table, []).append(row_id)
    ids = set()
    for table, row_ids in by_table.items():
        column = getattr(PeriodicTask, FOREIGN_KEY_OF_TABLE[table])
        for start in range(0, len(row_ids), ID_BATCH):
            batch = row_ids[start : start + ID_BATCH]
            ids.update(
                connection.execute(select(PeriodicTask.id).where(column.in_(batch))).scalars()
            )
    return ids


class Changes:
    """What changed between two versions: task ids, schedule rows, or everything."""

    def __init__(self, version):
        self.version = version
        self.task_ids = set()
        self.refs = set()
        self.everything = False


def changes_since(connection, applied):
    """The changes above version ``applied``, or None when there are none.

    ``everything`` is set when the log says so, or when it no longer reaches back to
    ``applied`` (pruned while this beat was away).
    """
    version = current_version(connection)
    if applied is not None and version == applied:
        return None
    changes = Changes(version)
    if applied is None:
        changes.everything = True
        return changes
    rows = connection.execute(
        select(
            ScheduleChange.version,
            ScheduleChange.task_id,
            ScheduleChange.schedule_table,
            ScheduleChange.schedule_id,
        ).where(ScheduleChange.version > applied, ScheduleChange.version <= version)
    ).all()
    if not rows or min(row.version for row in rows) > applied + 1:
        changes.everything = True
    for row in rows:
        if row.task_id is not None:
            changes.task_ids.add(row.task_id)
        elif row.schedule_table is not None:
            changes.refs.add((row.schedule_table, row.schedule_id))
        else:
            changes.everything = True
    return changes


def prune_changes(connection, before):
    """Forget change-log entries older than ``before`` (a beat that far behind re-reads all)."""
    return connection.execute(delete(ScheduleChange).where(ScheduleChange.changed_at < before))


def count_enabled(connection):
    return connection.execute(
        select(func.count()).select_from(PeriodicTask).where(PeriodicTask.enabled.is_(True))
    ).scalar()
