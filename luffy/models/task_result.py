"""One row per Celery task result, written by ``luffy.celery_results.DatabaseBackend``."""

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from luffy.extensions import db
from luffy.models.base import utcnow


class TaskResult(db.Model):
    """What django-celery-results' ``TaskResult`` holds: state, result and the extended request."""

    __tablename__ = "task_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(155), unique=True)
    task_name: Mapped[str | None] = mapped_column(String(255), index=True)
    periodic_task_name: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[str] = mapped_column(Text, default="[]")  # JSON
    kwargs: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    state: Mapped[str] = mapped_column(String(50), index=True, default="PENDING")
    worker: Mapped[str | None] = mapped_column(String(255))
    queue: Mapped[str | None] = mapped_column(String(100))
    retries: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    date_done: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # A job's own expiry (its result_ttl or failure_ttl, luffy/jobs/): the cleanup deletes
    # the row after this time; rows without one expire after result_expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    def __str__(self):
        return f"{self.task_name or '?'} {self.task_id}"
