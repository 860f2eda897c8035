"""Periodic schedules kept in the database: what beat (``luffy.beat``) runs and the admin edits."""

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from luffy.extensions import db
from luffy.models.base import as_utc, utcnow

INTERVAL_PERIODS = ("seconds", "minutes", "hours", "days")
SOLAR_EVENTS = (
    "dawn_astronomical",
    "dawn_nautical",
    "dawn_civil",
    "sunrise",
    "solar_noon",
    "sunset",
    "dusk_civil",
    "dusk_nautical",
    "dusk_astronomical",
)


class IntervalSchedule(db.Model):
    """Every ``every`` seconds, minutes, hours or days."""

    __tablename__ = "interval_schedules"
    __table_args__ = (
        CheckConstraint("every > 0", name="every_positive"),
        CheckConstraint(f"period IN {INTERVAL_PERIODS!r}", name="period_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    every: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(16), default="seconds")

    @property
    def seconds(self):
        return self.every * {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[self.period]

    def __str__(self):
        unit = dict(zip(INTERVAL_PERIODS, ("秒", "分钟", "小时", "天"), strict=True))[self.period]
        return f"每 {self.every} {unit}"


class CrontabSchedule(db.Model):
    """A cron line, evaluated in its own time zone."""

    __tablename__ = "crontab_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    minute: Mapped[str] = mapped_column(String(240), default="*")
    hour: Mapped[str] = mapped_column(String(96), default="*")
    day_of_week: Mapped[str] = mapped_column(String(64), default="*")
    day_of_month: Mapped[str] = mapped_column(String(124), default="*")
    month_of_year: Mapped[str] = mapped_column(String(64), default="*")
    timezone: Mapped[str] = mapped_column(String(64))

    @property
    def expression(self):
        return " ".join(
            (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        )

    def __str__(self):
        return f"{self.expression} ({self.timezone})"


class ClockedSchedule(db.Model):
    """One moment; its task runs once and is then disabled."""

    __tablename__ = "clocked_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    clocked_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __str__(self):
        return f"{as_utc(self.clocked_time):%Y-%m-%d %H:%M:%S} UTC"


class SolarSchedule(db.Model):
    """A solar event (sunrise, sunset...) at a place."""

    __tablename__ = "solar_schedules"
    __table_args__ = (
        CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude_range"),
        CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(24))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)

    def __str__(self):
        return f"{self.event} ({self.latitude}, {self.longitude})"


# Exactly one schedule per task, checked by the database too.
_ONE_SCHEDULE = (
    " + ".join(
        f"(CASE WHEN {column} IS NULL THEN 0 ELSE 1 END)"
        for column in ("interval_id", "crontab_id", "clocked_id", "solar_id")
    )
    + " = 1"
)


class PeriodicTask(db.Model):
    """A task name, its arguments and options, and exactly one schedule."""

    __tablename__ = "periodic_tasks"
    __table_args__ = (
        CheckConstraint(_ONE_SCHEDULE, name="one_schedule"),
        CheckConstraint("priority IS NULL OR priority BETWEEN 0 AND 255", name="priority_range"),
        CheckConstraint(
            "expire_seconds IS NULL OR expire_seconds > 0", name="expire_seconds_positive"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(200))
    interval_id: Mapped[int | None] = mapped_column(
        ForeignKey("interval_schedules.id", ondelete="CASCADE"), index=True
    )
    crontab_id: Mapped[int | None] = mapped_column(
        ForeignKey("crontab_schedules.id", ondelete="CASCADE"), index=True
    )
    clocked_id: Mapped[int | None] = mapped_column(
        ForeignKey("clocked_schedules.id", ondelete="CASCADE"), index=True
    )
    solar_id: Mapped[int | None] = mapped_column(
        ForeignKey("solar_schedules.id", ondelete="CASCADE"), index=True
    )
    args: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    kwargs: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    queue: Mapped[str | None] = mapped_column(String(200))
    routing_key: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expire_seconds: Mapped[int | None] = mapped_column(Integer)
    one_off: Mapped[bool] = mapped_column(Boolean, default=False)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total_run_count: Mapped[int] = mapped_column(Integer, default=0)
    date_changed: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    description: Mapped[str] = mapped_column(Text, default="")
    # Why beat disabled this row by itself (bad arguments, an unusable schedule, expired);
    # shown in the admin and cleared when someone enables the row again.
    disabled_reason: Mapped[str | None] = mapped_column(Text)

    interval: Mapped[IntervalSchedule | None] = relationship(lazy="joined")
    crontab: Mapped[CrontabSchedule | None] = relationship(lazy="joined")
    clocked: Mapped[ClockedSchedule | None] = relationship(lazy="joined")
    solar: Mapped[SolarSchedule | None] = relationship(lazy="joined")

    @property
    def schedule_row(self):
        return self.interval or self.crontab or self.clocked or self.solar

    def __str__(self):
        return self.name


class ScheduleVersion(db.Model):
    """One row whose ``version`` goes up in the same transaction as any schedule edit.

    Writers take this row's lock until they commit, so versions become visible in the order
    they were given out: a beat that has seen version N has seen every change up to N.
    """

    __tablename__ = "schedule_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Names of config ``beat_schedule`` entries already copied into rows (JSON list), so a
    # later start never brings back a row the admin deleted or overwrites one it edited.
    seeded: Mapped[str] = mapped_column(Text, default="[]")


class ScheduleChange(db.Model):
    """What one schedule edit touched, under the version it raised (``luffy.beat.changes``).

    ``task_id`` names a periodic task, or ``schedule_table``/``schedule_id`` a schedule row
    (beat re-reads the tasks using it); both empty means "anything may have changed" (raw SQL,
    a bulk insert), and beat re-reads every row in the background. Beat reads the entries
    above the version it has applied, so an edit costs it the rows it touched, not all rows.
    """

    __tablename__ = "schedule_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, index=True)
    task_id: Mapped[int | None] = mapped_column(Integer)
    schedule_table: Mapped[str | None] = mapped_column(String(32))
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


SCHEDULE_MODELS = (IntervalSchedule, CrontabSchedule, ClockedSchedule, SolarSchedule, PeriodicTask)
