"""The periodic task form's schedule part: one "schedule type" choice that shows only its
fields (static/js/admin.js), an existing schedule or a new one typed in the same form, and the
enable switch on each row of the list."""

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.form import DateTimeField
from flask_admin.helpers import get_redirect_target
from markupsafe import Markup
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import NumberRange, Optional

from luffy.admin.times import FORMAT, NoSuchLocalTime, from_local, show, site_zone
from luffy.beat.schedules import ScheduleError, validate_crontab_fields
from luffy.errors import wants_json
from luffy.extensions import db
from luffy.models.schedule import (
    INTERVAL_PERIODS,
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from luffy.responses import ok, refusal

KINDS = (
    ("interval", "间隔（每隔一段时间）"),
    ("crontab", "Crontab（按日历时间）"),
    ("clocked", "定时（在某一时刻运行一次）"),
    ("solar", "太阳事件（日出、日落…）"),
)
PERIOD_WORDS = ("秒", "分钟", "小时", "天")
# Each field of the schedule part, by the type it belongs to (the page shows only that type's).
FIELD_KIND = {
    "interval": "interval",
    "new_every": "interval",
    "new_period": "interval",
    "crontab": "crontab",
    "new_crontab": "crontab",
    "clocked": "clocked",
    "new_clocked_time": "clocked",
    "solar": "solar",
}
NEW_FIELDS = {"interval": "new_every", "crontab": "new_crontab", "clocked": "new_clocked_time"}
PICK_EXISTING = "— 选择已有的调度 —"

EXTRA_FIELDS = {
    # Checked in validate_form: forms posted without these (scripts, older pages) stay valid.
    "schedule_kind": SelectField(
        "调度类型", choices=[("", "— 选择调度类型 —"), *KINDS], validate_choice=False
    ),
    "new_every": IntegerField(
        "或新建：每",
        validators=[Optional(), NumberRange(min=1, message="必须是正整数")],
    ),
    "new_period": SelectField(
        "单位",
        choices=list(zip(INTERVAL_PERIODS, PERIOD_WORDS, strict=False)),
        default="seconds",
        validate_choice=False,
    ),
    "new_crontab": StringField(
        "或新建：crontab 表达式",
        description="分 时 日 月 星期，例如 */5 9-18 * * 1-5（站点时区）",
    ),
    "new_clocked_time": DateTimeField(
        "或新建：运行时间",
        format=FORMAT,
        validators=[Optional()],
        description="站点时区的时间，格式 YYYY-MM-DD HH:MM:SS",
    ),
}
WIDGET_ARGS = {name: {"data-schedule-kind": kind} for name, kind in FIELD_KIND.items()}
RELATION_ARGS = {
    "interval": {"blank_text": PICK_EXISTING},
    "crontab": {"blank_text": PICK_EXISTING},
    # One-off moments listed in the site's zone, as everywhere in the admin.
    "clocked": {"blank_text": PICK_EXISTING, "get_label": lambda row: show(row.clocked_time)},
    "solar": {"blank_text": PICK_EXISTING},
}


def kind_of(task):
    return next((kind for kind, _ in KINDS if getattr(task, kind) is not None), "")


class ScheduleKindForm:
    """Mixed into the periodic task view (before SecureModelView)."""

    def create_form(self, obj=None):
        form = super().create_form(obj)
        if request.method == "GET" and hasattr(form, "schedule_kind"):
            form.schedule_kind.data = form.schedule_kind.data or "interval"
        return form

    def on_form_prefill(self, form, id):
        super().on_form_prefill(form, id)
        form.schedule_kind.data = kind_of(self.get_one(id))

    def validate_form(self, form):
        if not super().validate_form(form):
            return False
        if not hasattr(form, "schedule_kind"):
            return True  # delete and action forms
        kind = form.schedule_kind.data
        if not kind:
            return True  # no type chosen: the view's own "exactly one" check speaks
        if kind not in dict(KINDS):
            form.schedule_kind.errors.append("请选择调度类型")
            return False
        for other, _ in KINDS:
            if other != kind:
                getattr(form, other).data = None  # hidden in the page: never saved
        if getattr(form, kind).data is not None:
            return True
        try:
            new_row = self._new_schedule(form, kind)
        except ValueError as error:
            getattr(form, NEW_FIELDS.get(kind, kind)).errors.append(str(error))
            return False
        getattr(form, kind).data = new_row  # saved with the task, in its transaction
        return True

    def _new_schedule(self, form, kind):
        if kind == "interval" and form.new_every.data:
            if form.new_period.data not in INTERVAL_PERIODS:
                raise ValueError("请选择间隔的单位")
            return IntervalSchedule(every=form.new_every.data, period=form.new_period.data)
        if kind == "crontab" and (form.new_crontab.data or "").strip():
            parts = form.new_crontab.data.split()
            if len(parts) != 5:
                raise ValueError("crontab 表达式要有 5 段：分 时 日 月 星期")
            minute, hour, day_of_month, month_of_year, day_of_week = parts
            zone = site_zone().key
            try:
                validate_crontab_fields(
                    minute, hour, day_of_week, day_of_month, month_of_year, zone
                )
            except ScheduleError as error:
                raise ValueError(str(error)) from error
            return CrontabSchedule(
                minute=minute,
                hour=hour,
                day_of_week=day_of_week,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                timezone=zone,
            )
        if kind == "clocked" and form.new_clocked_time.data:
            try:
                return ClockedSchedule(clocked_time=from_local(form.new_clocked_time.data))
            except NoSuchLocalTime as error:
                raise ValueError(str(error)) from error
        if kind == "solar":
            raise ValueError("请选择一个已有的太阳事件调度（在“太阳事件调度”页新建）")
        raise ValueError("请选择一个已有的调度，或在下面新建一个")

    @expose("/toggle/<int:row_id>", methods=["POST"])
    def toggle(self, row_id):
        """Turn one row on or off (``enabled`` = 1 or 0); JSON for the list's script."""
        row = db.session.get(PeriodicTask, row_id) if row_id < 2**31 else None
        if row is None:
            return refusal(404, "没有这个周期任务")
        row.enabled = request.form.get("enabled") == "1"
        db.session.commit()  # an ORM write: beat is told the schedule changed
        message = f"{row.name} 已{'启用' if row.enabled else '停用'}"
        if wants_json():
            return ok(message, enabled=row.enabled)
        flash(message, "success")
        return redirect(get_redirect_target() or self.get_url(".index_view"))


def enabled_switch(view, context, model, name):
    """The list's enabled column: the state in words and a button that flips it."""
    from flask_wtf.csrf import generate_csrf

    target = "0" if model.enabled else "1"
    return Markup(
        '<form class="enable-toggle" method="post" action="{action}">'
        '<input type="hidden" name="csrf_token" value="{token}">'
        '<input type="hidden" name="enabled" value="{target}">'
        '<span class="toggle-status">{state}</span>'
        '<button type="submit" class="btn btn-sm btn-outline-secondary" aria-label="{verb} {name}">'
        "{verb}</button></form>"
    ).format(
        action=view.get_url(".toggle", row_id=model.id, url=request.full_path),
        token=generate_csrf(),
        target=target,
        state="已启用" if model.enabled else "已停用",
        verb="停用" if model.enabled else "启用",
        name=model.name,
    )
