"""Every write to a schedule table raises the schedule version in the same transaction and
logs what it touched (``schedule_changes``), so beat re-reads those rows only.

Write paths covered (django-celery-beat misses edits made by bulk updates and raw SQL):
ORM flushes (the admin's forms and single deletes, code, the CLI), ORM bulk ``update()``/
``delete()``/``insert()`` statements (the admin's bulk actions), and plain SQL text run
through a session that names a schedule table. SQL run on a bare connection is invisible to
the ORM: call ``mark_schedule_changed(connection)`` after it; beat's background re-read of
every row (every ``BEAT_FULL_RELOAD_SECONDS``) picks it up anyway.
Beat's own bookkeeping (last run, run count, disabling a finished or broken row) is written
on a bare connection and does not count as an edit.
"""

import re

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from luffy.models.base import utcnow
from luffy.models.schedule import SCHEDULE_MODELS, PeriodicTask, ScheduleChange, ScheduleVersion

VERSION_ROW = 1
SCHEDULE_TABLES = tuple(model.__tablename__ for model in SCHEDULE_MODELS)
# Columns beat itself writes: changing only these is bookkeeping, not an edit.
BOOKKEEPING = {"last_run_at", "total_run_count", "date_changed"}
# A bulk statement touching more rows than this is logged as "anything may have changed".
MAX_LOGGED_ROWS = 1000
WRITE_SQL = re.compile(
    r"^\s*(insert|update|delete|replace)\b.*\b(" + "|".join(SCHEDULE_TABLES) + r")\b",
    re.IGNORECASE | re.DOTALL,
)


def _bump(connection):
    """Raise the version (taking its row lock until commit) and return the new value."""
    bump = (
        update(ScheduleVersion)
        .where(ScheduleVersion.id == VERSION_ROW)
        .values(version=ScheduleVersion.version + 1, changed_at=utcnow())
    )
    if not connection.execute(bump).rowcount:
        # First edit on an empty table: create the row; a concurrent creator wins the race.
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(ScheduleVersion).values(
                        id=VERSION_ROW, version=1, changed_at=utcnow(), seeded="[]"
                    )
                )
        except IntegrityError:
            connection.execute(bump)
    return current_version(connection)


def record_changes(connection, task_ids=(), refs=(), everything=False):
    """Raise the version and log the periodic tasks and schedule rows (table, id) touched.

    ``everything`` (or nothing named) logs "anything may have changed".
    """
    version = _bump(connection)
    now = utcnow()
    rows = [{"version": version, "task_id": task_id, "changed_at": now} for task_id in task_ids]
    rows += [
        {"version": version, "schedule_table": table, "schedule_id": row_id, "changed_at": now}
        for table, row_id in refs
    ]
    if everything or not rows:
        rows.append({"version": version, "changed_at": now})
    connection.execute(insert(ScheduleChange), rows)
    return version


def mark_schedule_changed(connection):
    """After raw SQL on a bare connection: log "anything may have changed" (same transaction)."""
    return record_changes(connection, everything=True)


def current_version(connection):
    return (
        connection.execute(
            select(ScheduleVersion.version).where(ScheduleVersion.id == VERSION_ROW)
        ).scalar()
        or 0
    )


def _edited(obj):
    state = inspect(obj)
    changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
    return bool(changed - BOOKKEEPING)


def _touched(session):
    """(periodic task ids, schedule rows) a flush wrote.

    In ``after_flush`` the session still shows its pre-flush state: new rows have their ids,
    and a deleted row still looks persistent with no changed column, so deletions are taken
    from ``session.deleted`` as such (checking them for edits would miss them).
    """
    tasks, refs = set(), set()
    for obj in session.new:
        if isinstance(obj, PeriodicTask):
            tasks.add(obj.id)
    edited = (obj for obj in session.dirty if isinstance(obj, SCHEDULE_MODELS) and _edited(obj))
    for obj in (*edited, *(o for o in session.deleted if isinstance(o, SCHEDULE_MODELS))):
        if isinstance(obj, PeriodicTask):
            tasks.add(obj.id)
        else:
            refs.add((obj.__tablename__, obj.id))
    return tasks, refs


def _after_flush(session, flush_context):
    tasks, refs = _touched(session)
    if tasks or refs:
        record_changes(session.connection(), sorted(tasks), sorted(refs))


def _bulk_targets(orm_execute_state):
    """What a bulk ORM statement will touch: (task ids, refs, everything) or None."""
    statement = orm_execute_state.statement
    models = [m.class_ for m in orm_execute_state.all_mappers if m.class_ in SCHEDULE_MODELS]
    if not models:
        return None
    model = models[0]
    if orm_execute_state.is_insert:
        # New schedule rows matter only once a task uses them (and that task is logged).
        return ((), (), True) if model is PeriodicTask else None
    if orm_execute_state.is_update:
        values = getattr(statement, "_values", None) or {}
        names = {getattr(column, "key", str(column)) for column in values}
        if names and not names - BOOKKEEPING:
            return None
    where = statement.whereclause
    if where is None:
        return (), (), True
    # Read the ids the statement will touch, before it runs, in the same transaction.
    ids = orm_execute_state.session.connection().execute(select(model.id).where(where)).scalars()
    ids = list(ids)
    if len(ids) > MAX_LOGGED_ROWS:
        return (), (), True
    if model is PeriodicTask:
        return ids, (), False
    return (), [(model.__tablename__, row_id) for row_id in ids], False


def _before_bulk_statement(orm_execute_state):
    statement = orm_execute_state.statement
    targets = None
    if orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert:
        targets = _bulk_targets(orm_execute_state)
    elif isinstance(statement, TextClause) and WRITE_SQL.match(statement.text):
        targets = (), (), True
    if targets is not None and (any(targets[:2]) or targets[2]):
        # Same transaction as the statement, which then runs as usual (returning nothing
        # here leaves other do_orm_execute listeners their turn).
        tasks, refs, everything = targets
        record_changes(orm_execute_state.session.connection(), tasks, refs, everything)


_watching = False


def watch_schedule_writes():
    """Install the session hooks once per process."""
    global _watching
    if _watching:
        return
    _watching = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _before_bulk_statement)
