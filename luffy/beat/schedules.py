"""Celery schedule objects built from rows: a crontab evaluated in its own time zone, a
one-moment ``clocked`` schedule, and validation the admin shares with beat.

Crontab rules across daylight-saving changes, in the row's own zone (a crontab an hour off
after a DST change, or read in the server's zone, is a known failure of database schedulers):
- a wall-clock time that does not exist that day (02:30 when clocks jump from 02:00 to
  03:00) runs once, shifted forward by the jump (03:30);
- a wall-clock time that happens twice (01:30 when clocks fall back) runs once, at the
  first occurrence, unless the hour field is ``*``: jobs that run every hour keep their
  real-time rhythm and run in both occurrences (what Vixie cron does).
Day of month and day of week must both match, as in Celery's own crontab.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import BaseSchedule, crontab, schedstate, schedule, solar

from luffy.models.base import as_utc

# How far ahead a crontab is searched for its next run; beyond it, the row never runs.
SEARCH_DAYS = 366 * 28
# The largest wall-clock jump of any zone's daylight-saving change, with a margin.
DST_MARGIN = timedelta(hours=3)
NEVER = timedelta(days=365 * 100).total_seconds()
PERIOD_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class ScheduleError(ValueError):
    """A row that cannot be turned into a schedule; the message is for the admin form."""


def get_zone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(f"未知的时区：{name}") from error


def zone_names():
    return sorted(available_timezones())


class ZonedCrontab(crontab):
    """A Celery crontab whose fields are read in the zone ``tz_name``, DST-safe."""

    def __init__(
        self,
        minute="*",
        hour="*",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        tz_name="UTC",
        **kwargs,
    ):
        try:
            super().__init__(minute, hour, day_of_week, day_of_month, month_of_year, **kwargs)
        except ValueError as error:
            raise ScheduleError(f"crontab 无效：{error}") from error
        self.zone = get_zone(tz_name)
        self.tz_name = tz_name
        self._sorted_hours = sorted(self.hour)
        self._sorted_minutes = sorted(self.minute)
        self._every_hour = len(self.hour) == 24
        # Rows sharing this schedule were mostly sent in the same tick, so they ask for the
        # run after the same moment: remember the last answers.
        self._memo = {}

    # -- the next run -------------------------------------------------------------------
    def next_run(self, after):
        """The first moment strictly after ``after`` (aware) when this crontab fires, in UTC."""
        after = as_utc(after)
        memo = self._memo.get(after)
        if memo is not None:
            return memo
        start = after.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        if self._near_change(after):
            start -= DST_MARGIN  # wall clock may have gone back: earlier local times can be ahead
        best = best_local = None
        for local in self._local_times(start):
            if best is not None and local > best_local + DST_MARGIN:
                break
            for moment in self._moments(local):
                if moment > after and (best is None or moment < best):
                    best, best_local = moment, local
            if best is not None and not self._near_change(best):
                break
        if best is None:
            raise ScheduleError("这个 crontab 永远不会运行")
        if len(self._memo) >= 256:
            self._memo.clear()
        self._memo[after] = best
        return best

    def _near_change(self, moment):
        return (moment - DST_MARGIN).astimezone(self.zone).utcoffset() != (
            moment + DST_MARGIN
        ).astimezone(self.zone).utcoffset()

    def _moments(self, local):
        """The UTC moments a wall-clock time ``local`` stands for (zero, one or two)."""
        first = local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return (first,)
        if first.astimezone(self.zone).replace(tzinfo=None) != local:
            return (first,)  # in a spring-forward gap: shifted forward by the gap
        return (first, second) if self._every_hour else (first,)

    def _local_times(self, start):
        day = start.date()
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                first_day = day == start.date()
                for hour in self._sorted_hours:
                    if first_day and hour < start.hour:
                        continue
                    for minute in self._sorted_minutes:
                        if first_day and hour == start.hour and minute < start.minute:
                            continue
                        yield datetime(day.year, day.month, day.day, hour, minute)
            day += timedelta(days=1)

    def _day_matches(self, day):
        return (
            day.month in self.month_of_year
            and day.day in self.day_of_month
            and day.isoweekday() % 7 in self.day_of_week
        )

    # -- Celery's interface -------------------------------------------------------------
    def remaining_estimate(self, last_run_at):
        return self.next_run(last_run_at) - as_utc(self.now())

    def is_due(self, last_run_at):
        now = as_utc(self.now())
        if self.next_run(last_run_at) <= now:
            return schedstate(True, (self.next_run(now) - now).total_seconds())
        return schedstate(False, (self.next_run(last_run_at) - now).total_seconds())

    def __repr__(self):
        return (
            f"<crontab: {self._orig_minute} {self._orig_hour} {self._orig_day_of_month} "
            f"{self._orig_month_of_year} {self._orig_day_of_week} ({self.tz_name})>"
        )

    def __reduce__(self):
        return (
            self.__class__,
            (
                self._orig_minute,
                self._orig_hour,
                self._orig_day_of_week,
                self._orig_day_of_month,
                self._orig_month_of_year,
                self.tz_name,
            ),
        )

    def __eq__(self, other):
        if isinstance(other, ZonedCrontab):
            return super().__eq__(other) and other.tz_name == self.tz_name
        return NotImplemented


class clocked(BaseSchedule):
    """Due once, at ``moment``; the scheduler disables the task after that run."""

    def __init__(self, moment, **kwargs):
        super().__init__(**kwargs)
        self.moment = as_utc(moment)

    def remaining_estimate(self, last_run_at):
        return self.moment - as_utc(self.now())

    def next_run(self, after):
        return self.moment if self.moment > as_utc(after) else None

    def is_due(self, last_run_at):
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        if remaining <= 0:
            return schedstate(True, NEVER)
        return schedstate(False, remaining)

    def __repr__(self):
        return f"<clocked: {self.moment.isoformat()}>"

    def __reduce__(self):
        return self.__class__, (self.moment,)

    def __eq__(self, other):
        if isinstance(other, clocked):
            return self.moment == other.moment
        return NotImplemented


def schedule_key(spec):
    """What makes a row's schedule what it is, as a tuple (rows with equal keys share one).

    ``spec`` is a flat row (``luffy.beat.entries.spec_of``): schedule columns prefixed
    ``interval_``, ``cron_``, ``clocked_`` or ``solar_``.
    """
    if spec.interval_id is not None:
        return ("interval", spec.interval_every, spec.interval_period)
    if spec.crontab_id is not None:
        return (
            "crontab",
            spec.cron_minute,
            spec.cron_hour,
            spec.cron_day_of_week,
            spec.cron_day_of_month,
            spec.cron_month_of_year,
            spec.cron_timezone,
        )
    if spec.clocked_id is not None:
        return ("clocked", as_utc(spec.clocked_time))
    if spec.solar_id is not None:
        return ("solar", spec.solar_event, spec.solar_latitude, spec.solar_longitude)
    raise ScheduleError("周期任务没有调度")


def schedule_from_key(key, app=None, nowfun=None):
    """The Celery schedule for a ``schedule_key`` (raises ScheduleError)."""
    kind = key[0]
    if kind == "interval":
        every, period = key[1:]
        seconds = every * PERIOD_SECONDS[period]
        return schedule(timedelta(seconds=seconds), app=app, nowfun=nowfun)
    if kind == "crontab":
        return ZonedCrontab(*key[1:6], tz_name=key[6], app=app, nowfun=nowfun)
    if kind == "clocked":
        return clocked(key[1], app=app, nowfun=nowfun)
    try:
        return solar(*key[1:], app=app, nowfun=nowfun)
    except (ValueError, ImportError) as error:
        raise ScheduleError(f"太阳事件无效：{error}") from error


def validate_crontab_fields(minute, hour, day_of_week, day_of_month, month_of_year, tz_name):
    """Raise ScheduleError unless the fields parse, name real dates, and ever fire."""
    cron = ZonedCrontab(minute, hour, day_of_week, day_of_month, month_of_year, tz_name=tz_name)
    # Celery itself refuses 31 February (every day/month pair impossible); a spec that is
    # possible on paper but never fires (30 February on a Monday...) is refused here.
    cron.next_run(datetime.combine(date.today(), datetime.min.time(), tzinfo=UTC))
    return cron
