"""Times in the admin: stored in UTC, shown, typed and filtered in the site's time zone (TIMEZONE)."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from flask_admin.contrib.sqla.filters import FilterConverter

from luffy.models.base import as_utc

FORMAT = "%Y-%m-%d %H:%M:%S"  # what Flask-Admin's date-time fields and filters read and write


def site_zone():
    return ZoneInfo(current_app.config["TIMEZONE"])


def to_local(moment):
    """A stored UTC time as the naive site-local time a form shows."""
    return None if moment is None else as_utc(moment).astimezone(site_zone()).replace(tzinfo=None)


def from_local(moment):
    """A naive site-local time typed into a form or a filter, as aware UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=site_zone()).astimezone(timezone.utc)


def show(moment):
    """A stored UTC time as site-local text with its offset, "2026-12-01 09:00:00 +08:00"."""
    if moment is None:
        return ""
    local = as_utc(moment).astimezone(site_zone())
    minutes = int(local.utcoffset().total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{local:{FORMAT}} {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def describe_zone():
    """What a date-time form field says about the time it wants."""
    return f"站点时区 {current_app.config['TIMEZONE']} 的时间，格式 YYYY-MM-DD HH:MM:SS"


def datetime_formatter(view, value, name):
    return show(value)


class LocalTimeFilter:
    """A date-time filter whose typed value is site-local time (the lists show that time)."""

    def clean(self, value):
        cleaned = super().clean(value)
        if isinstance(cleaned, datetime):
            return from_local(cleaned)
        if isinstance(cleaned, list):
            return [from_local(item) if isinstance(item, datetime) else item for item in cleaned]
        return cleaned


class LocalTimeFilterConverter(FilterConverter):
    """Flask-Admin's filter converter with every date-time filter reading site-local time."""

    datetime_filters = tuple(
        type(f"Local{base.__name__}", (LocalTimeFilter, base), {})
        for base in FilterConverter.datetime_filters
    )
