"""The admin home's figures: today's orders, live sales, failed tasks, the next scheduled runs."""

from datetime import UTC, datetime, time, timedelta

from celery import states
from sqlalchemy import func, select

from luffy.admin.times import site_zone
from luffy.beat.services import next_due
from luffy.extensions import db
from luffy.models import Order, TaskResult
from luffy.models.base import utcnow
from luffy.sales.queries import open_sales

FAILED_WINDOW = timedelta(hours=24)


def start_of_today():
    """Midnight today in the site's zone (TIMEZONE), in UTC as the database keeps times
    (SQLite compares them as text, so the offset must be the stored one)."""
    zone = site_zone()
    return datetime.combine(datetime.now(zone).date(), time(0), tzinfo=zone).astimezone(UTC)


def orders_today():
    return db.session.scalar(
        select(func.count()).select_from(Order).where(Order.created_at >= start_of_today())
    )


def failed_tasks_recently(now=None):
    since = (now or utcnow()) - FAILED_WINDOW
    return db.session.scalar(
        select(func.count())
        .select_from(TaskResult)
        .where(TaskResult.state == states.FAILURE, TaskResult.date_done >= since)
    )


def live_sales():
    """Sales running now (sold out or not), with their seats left."""
    return [card for card in open_sales() if card.sale.phase() == "running"]


def next_runs(limit=5):
    """The next runs beat will send: [{"name", "task", "next_run_at"}...]; [] if unknown."""
    try:
        return next_due(limit)
    except Exception:  # a schedule beat itself would skip must not take the admin home down
        return []
