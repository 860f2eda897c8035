"""Times in the admin: stored in UTC; shown, typed and filtered in the site's zone (TIMEZONE)."""

from datetime import UTC, datetime
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


class NoSuchLocalTime(ValueError):
    """A wall-clock time skipped when the clocks went forward (02:30 on a spring-forward day)."""


def from_local(moment):
    """A naive site-local time typed into a form or a filter, as aware UTC.

    A time the clocks skipped raises NoSuchLocalTime; a time they went through twice (the
    hour repeated in autumn) is its first occurrence.
    """
    if moment is None or moment.tzinfo is not None:
        return moment
    zone = site_zone()
    aware = moment.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment:
        raise NoSuchLocalTime(
            f"{moment:{FORMAT}} 在时区 {zone.key} 中不存在（夏令时切换时跳过的时间）"
        )
    return aware.astimezone(UTC)


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

    def validate(self, value):
        if not super().validate(value):
            return False
        try:
            self.clean(value)
        except ValueError:  # a skipped wall-clock time, or not a time at all
            return False
        return True

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


def utc_offset_minutes():
    """The site's offset from UTC now, in minutes (the admin's date picker starts from it)."""
    return int(datetime.now(site_zone()).utcoffset().total_seconds()) // 60
