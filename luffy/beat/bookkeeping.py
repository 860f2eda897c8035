"""What beat writes back: run times and counts of what it sent, and the rows it disabled
(one-off tasks that ran, expired tasks, rows it cannot send), with the reason.

Written on a bare connection, as increments, so it never counts as an edit; a failed write is
kept and retried, and the database being away never stops the sending.
"""

import time

from celery.utils.log import get_logger
from sqlalchemy import bindparam, update
from sqlalchemy.exc import SQLAlchemyError

from luffy.models.base import as_utc
from luffy.models.schedule import PeriodicTask

log = get_logger(__name__)
DB_RETRY_SECONDS = 2.0


# Runs of rows that stay enabled; bookkeeping is not an edit, so date_changed is kept.
RUNS_WRITE_BACK = (
    update(PeriodicTask)
    .where(PeriodicTask.id == bindparam("row_id"))
    .values(
        total_run_count=PeriodicTask.total_run_count + bindparam("runs"),
        last_run_at=bindparam("ran_at"),
        date_changed=PeriodicTask.date_changed,
    )
)


def retire_reason(entry):
    """Why an entry that will never run again is disabled (shown in the admin)."""
    if entry.expired:
        return f"已过期（过期时间 {as_utc(entry.expires):%Y-%m-%d %H:%M:%S} UTC）"
    if entry.one_off:
        return "一次性任务已运行"
    return "不会再运行"


class Bookkeeping:
    """Mixed into the scheduler: ``_pending`` run counts and disables, and ``sync()``."""

    def _init_bookkeeping(self):
        # id -> {"last_run_at", "runs", "disable": reason or None, "seen": date_changed}
        self._pending = {}
        self._reported = {}  # id -> the reason last logged, so a bad row is logged once
        self._db_retry_at = 0.0
        self._db_down = False

    def _ran(self, entry, now):
        entry.last_run_at = now
        entry.total_run_count += 1
        self._merge_pending(entry.id, {"last_run_at": now, "runs": 1})

    def _retire(self, entry):
        """An entry that will never run again: off the plan, and disabled in the database."""
        self.plan.remove(entry.id)
        self._merge_pending(entry.id, {"disable": retire_reason(entry)})
        log.info("beat: %r will not run again, disabling it: %s", entry.name, retire_reason(entry))

    def _disable(self, row_id, name, seen, reason):
        """A row beat cannot send as written: log once, disable with the reason, go on.

        The row is disabled only if nobody edited it since beat read it (``seen``): a fix
        made in the meantime is not switched off.
        """
        if self._reported.get(row_id) != reason:
            self._reported[row_id] = reason
            log.error("beat: periodic task %r cannot be sent, disabling it: %s", name, reason)
        self._merge_pending(row_id, {"disable": reason, "seen": seen})

    def _merge_pending(self, row_id, change):
        old = self._pending.setdefault(
            row_id, {"last_run_at": None, "runs": 0, "disable": None, "seen": None}
        )
        old["runs"] += change.get("runs", 0)
        if change.get("last_run_at") is not None:
            old["last_run_at"] = max(filter(None, (old["last_run_at"], change["last_run_at"])))
        if change.get("disable"):
            old["disable"], old["seen"] = change["disable"], change.get("seen")

    def should_sync(self):
        return bool(self._pending) and time.monotonic() >= self._db_retry_at

    def sync(self):
        """Write the run times, counts and disables of what was sent (increments)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        runs = [
            {"row_id": row_id, "runs": change["runs"], "ran_at": change["last_run_at"]}
            for row_id, change in pending.items()
            if change["runs"] and not change["disable"]
        ]
        try:
            with self.engine.begin() as connection:
                if runs:  # the common case, 10,000 rows after a busy minute: one executemany
                    connection.execute(RUNS_WRITE_BACK, runs)
                for row_id, change in pending.items():
                    if change["disable"] or not change["runs"]:
                        connection.execute(self._write_back(row_id, change))
        except SQLAlchemyError as error:
            for row_id, change in pending.items():
                self._merge_pending(row_id, change)
            self._database_failed("write back run times", error)
        else:
            self._database_ok()

    @staticmethod
    def _write_back(row_id, change):
        # Bookkeeping is not an edit: keep date_changed as it was.
        values = {"date_changed": PeriodicTask.date_changed}
        if change["runs"]:
            values["total_run_count"] = PeriodicTask.total_run_count + change["runs"]
        if change["last_run_at"] is not None:
            values["last_run_at"] = change["last_run_at"]
        statement = update(PeriodicTask).where(PeriodicTask.id == row_id)
        if change["disable"]:
            values.update(enabled=False, disabled_reason=change["disable"])
            if change["seen"] is not None and not change["runs"]:
                statement = statement.where(PeriodicTask.date_changed == change["seen"])
        return statement.values(**values)

    # -- the database going away ----------------------------------------------------------
    def _database_failed(self, doing, error):
        self._db_retry_at = time.monotonic() + DB_RETRY_SECONDS
        if not self._db_down:
            log.error(
                "beat: database unavailable (could not %s); keeping the schedule I have "
                "and retrying every %ss: %s",
                doing,
                DB_RETRY_SECONDS,
                error,
            )
        self._db_down = True

    def _database_ok(self):
        if self._db_down:
            log.warning("beat: database reachable again")
        self._db_down = False
