"""Every write to a schedule table raises ``schedule_versions.version`` in the same transaction.

Write paths covered (PITFALLS 14): ORM flushes (the admin's forms, code, the CLI), ORM bulk
``update()``/``delete()``/``insert()`` statements (the admin's bulk actions), and plain SQL
text run through a session that names a schedule table. SQL run on a bare connection is
invisible to the ORM: call ``mark_schedule_changed(connection)`` after it, and beat's full
reload (every ``BEAT_FULL_RELOAD_SECONDS``) picks it up anyway.
Beat's own bookkeeping (last run, run count) is written on a bare connection and does not
count as an edit.
"""

import re

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from luffy.models.base import utcnow
from luffy.models.schedule import SCHEDULE_MODELS, ScheduleVersion

VERSION_ROW = 1
SCHEDULE_TABLES = tuple(model.__tablename__ for model in SCHEDULE_MODELS)
# Columns beat itself writes: changing only these is bookkeeping, not an edit.
BOOKKEEPING = {"last_run_at", "total_run_count", "date_changed"}
WRITE_SQL = re.compile(
    r"^\s*(insert|update|delete|replace)\b.*\b(" + "|".join(SCHEDULE_TABLES) + r")\b",
    re.IGNORECASE | re.DOTALL,
)


def mark_schedule_changed(connection):
    """Raise the schedule version on ``connection`` (inside the caller's transaction)."""
    bump = (
        update(ScheduleVersion)
        .where(ScheduleVersion.id == VERSION_ROW)
        .values(version=ScheduleVersion.version + 1, changed_at=utcnow())
    )
    if connection.execute(bump).rowcount:
        return
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


def current_version(connection):
    return (
        connection.execute(
            select(ScheduleVersion.version).where(ScheduleVersion.id == VERSION_ROW)
        ).scalar()
        or 0
    )


def _is_edit(obj):
    if not isinstance(obj, SCHEDULE_MODELS):
        return False
    state = inspect(obj)
    if state.persistent and not state.deleted:
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
        return bool(changed - BOOKKEEPING)
    return True


def _after_flush(session, flush_context):
    if any(_is_edit(obj) for obj in (*session.new, *session.dirty, *session.deleted)):
        mark_schedule_changed(session.connection())


def _after_bulk_statement(orm_execute_state):
    statement = orm_execute_state.statement
    touches = False
    if orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert:
        touches = any(mapper.class_ in SCHEDULE_MODELS for mapper in orm_execute_state.all_mappers)
        if touches and orm_execute_state.is_update:
            values = getattr(statement, "_values", None) or {}
            names = {getattr(column, "key", str(column)) for column in values}
            touches = not names or bool(names - BOOKKEEPING)
    elif isinstance(statement, TextClause):
        touches = bool(WRITE_SQL.match(statement.text))
    if touches:
        # Same transaction as the statement, which then runs as usual (returning nothing
        # here leaves other do_orm_execute listeners their turn).
        mark_schedule_changed(orm_execute_state.session.connection())


_watching = False


def watch_schedule_writes():
    """Install the session hooks once per process."""
    global _watching
    if _watching:
        return
    _watching = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _after_bulk_statement)
