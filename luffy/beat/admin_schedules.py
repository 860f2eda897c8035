"""Admin views for the schedule rows themselves (interval, crontab, clocked, solar); the
periodic task view is in ``luffy.beat.admin``."""

from flask import current_app
from sqlalchemy import select
from wtforms import FloatField, SelectField
from wtforms.validators import InputRequired, NumberRange, ValidationError

from luffy.admin.security import SecureModelView
from luffy.beat.schedules import ScheduleError, validate_crontab_fields, zone_names
from luffy.beat.services import describe_crontab
from luffy.extensions import db
from luffy.models.schedule import INTERVAL_PERIODS, SOLAR_EVENTS, PeriodicTask

PERIOD_LABELS = dict(zip(INTERVAL_PERIODS, ("秒", "分钟", "小时", "天"), strict=False))
SOLAR_LABELS = dict(
    zip(
        SOLAR_EVENTS,
        (
            "天文晨光始",
            "航海晨光始",
            "民用晨光始",
            "日出",
            "正午",
            "日落",
            "民用昏影终",
            "航海昏影终",
            "天文昏影终",
        ),
        strict=False,
    )
)


class ScheduleRowView(SecureModelView):
    """Shared by the four schedule kinds: refuse deleting a schedule a task still uses."""

    def on_model_delete(self, model):
        in_use = db.session.scalar(
            select(db.func.count())
            .select_from(PeriodicTask)
            .where(getattr(PeriodicTask, self.foreign_key) == model.id)
        )
        if in_use:
            raise ValidationError(f"仍有 {in_use} 个周期任务使用这个调度，请先修改或删除它们")
        super().on_model_delete(model)


class IntervalScheduleView(ScheduleRowView):
    foreign_key = "interval_id"
    column_list = ("id", "every", "period")
    column_labels = {"every": "每", "period": "单位"}
    column_formatters = {"period": lambda v, c, m, n: PERIOD_LABELS.get(m.period, m.period)}
    form_columns = ("every", "period")
    form_overrides = {"period": SelectField}
    form_args = {
        "every": {
            "validators": [
                InputRequired(message="必填"),
                NumberRange(min=1, message="必须是正整数"),
            ]
        },
        "period": {"choices": list(PERIOD_LABELS.items())},
    }


class CrontabScheduleView(ScheduleRowView):
    foreign_key = "crontab_id"
    column_list = (
        "id",
        "minute",
        "hour",
        "day_of_month",
        "month_of_year",
        "day_of_week",
        "timezone",
        "description",
    )
    column_formatters = {"description": lambda v, c, m, n: describe_crontab(m)}
    column_labels = {
        "minute": "分",
        "hour": "时",
        "day_of_week": "星期 (0=周日)",
        "day_of_month": "日",
        "month_of_year": "月",
        "timezone": "时区",
        "description": "说明",
    }
    form_columns = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
    form_overrides = {"timezone": SelectField}
    form_args = {
        "minute": {"default": "*"},
        "hour": {"default": "*"},
        "day_of_week": {"default": "*"},
        "day_of_month": {"default": "*"},
        "month_of_year": {"default": "*"},
    }

    def create_form(self, obj=None):
        form = self._with_zones(super().create_form(obj))
        if hasattr(form, "timezone") and not form.timezone.data:
            form.timezone.data = current_app.config["TIMEZONE"]
        return form

    def edit_form(self, obj=None):
        return self._with_zones(super().edit_form(obj))

    def _with_zones(self, form):
        if hasattr(form, "timezone"):
            form.timezone.choices = [(name, name) for name in zone_names()]
        return form

    def validate_form(self, form):
        if not super().validate_form(form):
            return False
        if not hasattr(form, "minute"):
            return True
        fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        values = [(getattr(form, name).data or "*").strip() for name in fields]
        try:
            validate_crontab_fields(*values, form.timezone.data)
        except ScheduleError as error:
            getattr(form, self._guilty_field(values)).errors.append(str(error))
            return False
        return True

    @staticmethod
    def _guilty_field(values):
        """The field an error belongs to: the first that fails alone, else the day of month."""
        from celery.schedules import crontab

        names = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        for index, name in enumerate(names):
            alone = ["*"] * 5
            alone[index] = values[index]
            try:
                crontab(*alone)
            except (ValueError, TypeError):
                return name
        return "day_of_month"


class ClockedScheduleView(ScheduleRowView):
    foreign_key = "clocked_id"
    column_list = ("id", "clocked_time")
    column_labels = {"clocked_time": "运行时间"}
    form_columns = ("clocked_time",)


class SolarScheduleView(ScheduleRowView):
    foreign_key = "solar_id"
    column_list = ("id", "event", "latitude", "longitude")
    column_labels = {"event": "事件", "latitude": "纬度", "longitude": "经度"}
    column_formatters = {"event": lambda v, c, m, n: SOLAR_LABELS.get(m.event, m.event)}
    form_columns = ("event", "latitude", "longitude")
    form_overrides = {"event": SelectField, "latitude": FloatField, "longitude": FloatField}
    form_args = {
        "event": {"choices": list(SOLAR_LABELS.items())},
        "latitude": {
            "validators": [
                InputRequired(message="必填"),
                NumberRange(-90, 90, message="纬度在 -90 到 90 之间"),
            ]
        },
        "longitude": {
            "validators": [
                InputRequired(message="必填"),
                NumberRange(-180, 180, message="经度在 -180 到 180 之间"),
            ]
        },
    }
