"""One row per Celery task result, written by ``luffy.celery_results.DatabaseBackend``."""

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from luffy.extensions import db
from luffy.models.base import utcnow


class TaskResult(db.Model):
    """What django-celery-results' ``TaskResult`` holds: state, result and the extended request."""

    __tablename__ = "task_results"
    # The admin list filters by one of these and sorts by creation time; the dashboard counts
    # the last day by state (an index-only range scan of the first) and lists recent failures.
    __table_args__ = (
        Index("ix_task_results_created_at_state", "created_at", "state"),
        Index("ix_task_results_state_created_at", "state", "created_at"),
        Index("ix_task_results_task_name_created_at", "task_name", "created_at"),
        Index("ix_task_results_periodic_task_name_created_at", "periodic_task_name", "created_at"),
        Index("ix_task_results_state_date_done", "state", "date_done"),
        # The admin's search is a task id's beginning (LIKE 'abc%'): PostgreSQL reads such a
        # prefix from an index only with the pattern operator class.
        Index(
            "ix_task_results_task_id_prefix",
            "task_id",
            postgresql_ops={"task_id": "varchar_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(155), unique=True)
    task_name: Mapped[str | None] = mapped_column(String(255))
    periodic_task_name: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[str] = mapped_column(Text, default="[]")  # JSON
    kwargs: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    state: Mapped[str] = mapped_column(String(50), default="PENDING")
    worker: Mapped[str | None] = mapped_column(String(255))
    queue: Mapped[str | None] = mapped_column(String(100))
    retries: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    date_done: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # A job's own expiry (its result_ttl or failure_ttl, luffy/jobs/): the cleanup deletes
    # the row after this time; rows without one expire after result_expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    def __str__(self):
        return f"{self.task_name or '?'} {self.task_id}"
