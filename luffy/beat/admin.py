"""Admin views for periodic tasks and their schedules; every save marks the schedule changed
(``luffy.beat.changes``), so a running beat applies it within seconds."""

import json
import logging

from flask import flash
from flask_admin.actions import action
from flask_admin.babel import lazy_gettext
from markupsafe import Markup
from sqlalchemy import select, update
from wtforms import SelectField
from wtforms.validators import InputRequired, NumberRange, Optional, ValidationError

from luffy.admin.security import SecureModelView
from luffy.admin.times import show
from luffy.beat.admin_form import (
    EXTRA_FIELDS,
    RELATION_ARGS,
    WIDGET_ARGS,
    ScheduleKindForm,
    enabled_switch,
)
from luffy.beat.entries import BadRow
from luffy.beat.services import describe_crontab, next_run_of, registered_task_names, run_now
from luffy.broker import BrokerUnavailable
from luffy.extensions import db
from luffy.models.schedule import PeriodicTask

log = logging.getLogger(__name__)
SCHEDULE_FIELDS = ("interval", "crontab", "clocked", "solar")


def json_validator(kind):
    def check(form, field):
        try:
            value = json.loads(field.data or ("[]" if kind is list else "{}"))
        except ValueError as error:
            raise ValidationError(f"不是合法的 JSON：{error}") from error
        if not isinstance(value, kind):
            raise ValidationError(
                '必须是 JSON 数组，例如 [1, "a"]'
                if kind is list
                else '必须是 JSON 对象，例如 {"a": 1}'
            )

    return check


def _schedule_column(view, context, model, name):
    row = model.schedule_row
    if row is None:
        return "（无）"
    if model.crontab is not None:
        return Markup("crontab {}<br><small>{}</small>").format(row, describe_crontab(row))
    if model.clocked is not None:
        return f"定时：{show(row.clocked_time)}"  # in the site's zone, as every admin time
    kind = {"interval": "间隔", "clocked": "定时", "solar": "太阳事件"}[
        next(field for field in SCHEDULE_FIELDS if getattr(model, field) is not None)
    ]
    return f"{kind}：{row}"


def _next_run_column(view, context, model, name):
    return show(next_run_of(model)) or "—"


class PeriodicTaskView(ScheduleKindForm, SecureModelView):
    column_list = (
        "name",
        "task",
        "schedule",
        "enabled",
        "one_off",
        "next_run",
        "expires",
        "last_run_at",
        "total_run_count",
        "disabled_reason",
        "date_changed",
    )
    column_default_sort = ("name", False)
    column_searchable_list = ("name", "task")
    column_filters = ("enabled", "one_off", "task")
    column_formatters = {
        "schedule": _schedule_column,
        "next_run": _next_run_column,
        "enabled": enabled_switch,
    }
    column_labels = {
        "name": "名称",
        "task": "任务",
        "schedule": "调度",
        "enabled": "启用",
        "one_off": "只运行一次",
        "next_run": "下次运行",
        "last_run_at": "上次运行",
        "total_run_count": "运行次数",
        "date_changed": "修改时间",
        "interval": "间隔调度",
        "crontab": "Crontab 调度",
        "clocked": "定时调度",
        "solar": "太阳事件调度",
        "args": "位置参数 (JSON)",
        "kwargs": "关键字参数 (JSON)",
        "queue": "队列",
        "routing_key": "路由键",
        "priority": "优先级",
        "headers": "消息头 (JSON)",
        "expires": "过期时间",
        "expire_seconds": "消息过期秒数",
        "start_time": "开始时间",
        "description": "说明",
        "disabled_reason": "停用原因",
    }
    form_columns = (
        "name",
        "task",
        "schedule_kind",
        "interval",
        "new_every",
        "new_period",
        "crontab",
        "new_crontab",
        "clocked",
        "new_clocked_time",
        "solar",
        "args",
        "kwargs",
        "queue",
        "routing_key",
        "priority",
        "headers",
        "expires",
        "expire_seconds",
        "one_off",
        "start_time",
        "enabled",
        "description",
    )
    form_extra_fields = EXTRA_FIELDS
    form_overrides = {"task": SelectField}
    form_args = {
        **RELATION_ARGS,
        "task": {"validate_choice": False, "validators": [InputRequired(message="请选择任务")]},
        "args": {"validators": [json_validator(list)], "default": "[]"},
        "kwargs": {"validators": [json_validator(dict)], "default": "{}"},
        "headers": {"validators": [json_validator(dict)], "default": "{}"},
        "priority": {
            "validators": [Optional(), NumberRange(0, 255, message="优先级在 0 到 255 之间")]
        },
        "expire_seconds": {"validators": [Optional(), NumberRange(min=1, message="必须是正数")]},
    }
    form_widget_args = {
        **WIDGET_ARGS,
        "args": {"rows": 2},
        "kwargs": {"rows": 2},
        "headers": {"rows": 2},
    }

    def create_form(self, obj=None):
        return self._with_task_choices(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._with_task_choices(super().edit_form(obj))

    def _with_task_choices(self, form):
        if hasattr(form, "task"):
            names = registered_task_names()
            current = form.task.data or form.task.object_data
            if current and current not in names:
                names = [
                    current,
                    *names,
                ]  # keep an edited row's unknown name visible (refused on save)
            form.task.choices = [("", "— 选择任务 —")] + [(name, name) for name in names]
        return form

    def validate_form(self, form):
        if not super().validate_form(form):
            return False
        if not hasattr(form, "task"):
            return True  # delete and action forms
        ok = True
        if form.task.data not in registered_task_names():
            form.task.errors.append(f"未注册的任务：{form.task.data}")
            ok = False
        chosen = [field for field in SCHEDULE_FIELDS if getattr(form, field).data is not None]
        if len(chosen) != 1:
            form.interval.errors.append("间隔、crontab、定时、太阳事件四种调度必须且只能选一种")
            ok = False
        if form.expires.data and form.expire_seconds.data:
            form.expire_seconds.errors.append("过期时间和消息过期秒数只能填一个")
            ok = False
        return ok

    def on_model_change(self, form, model, is_created):
        for column in ("queue", "routing_key"):
            if getattr(model, column) == "":
                setattr(model, column, None)
        if model.enabled:
            model.disabled_reason = None  # beat's reason no longer holds once enabled again
        super().on_model_change(form, model, is_created)

    def _selected(self, ids):
        wanted = [int(i) for i in ids if str(i).isdigit()]
        return wanted

    def _set_enabled(self, ids, enabled):
        # A bulk UPDATE, not row by row: the change log must catch it (luffy.beat.changes).
        values = {"enabled": enabled}
        if enabled:
            values["disabled_reason"] = None
        result = db.session.execute(
            update(PeriodicTask).where(PeriodicTask.id.in_(self._selected(ids))).values(**values)
        )
        db.session.commit()
        return result.rowcount

    @action(
        "delete",
        lazy_gettext("Delete"),
        lazy_gettext("Are you sure you want to delete selected records?"),
    )
    def action_delete(self, ids):
        # Flask-Admin binds the ids as text, which PostgreSQL refuses to compare with an
        # integer column: hand it integers.
        return super().action_delete(self._selected(ids))

    @action("enable", "启用", "启用选中的周期任务？")
    def action_enable(self, ids):
        flash(f"已启用 {self._set_enabled(ids, True)} 个周期任务", "success")

    @action("disable", "停用", "停用选中的周期任务？")
    def action_disable(self, ids):
        flash(f"已停用 {self._set_enabled(ids, False)} 个周期任务", "success")

    @action("run_now", "立即运行", "立即发送选中的任务（不影响调度）？")
    def action_run_now(self, ids):
        rows = db.session.scalars(
            select(PeriodicTask).where(PeriodicTask.id.in_(self._selected(ids)))
        ).unique()
        sent = []
        for row in rows:
            try:
                sent.append(f"{row.name} → {run_now(row)}")
            except BadRow as error:  # the row as written cannot be sent: say why
                flash(f"{row.name} 无法发送：{error}", "error")
            except (
                BrokerUnavailable
            ) as error:  # tell the admin, never a 500; the rest would fail too
                log.warning("run now of %s failed: %s", row.name, error)
                flash(f"{row.name} 发送失败（任务队列不可用）：{error}", "error")
                break
        if sent:
            flash("已发送：" + "；".join(sent), "success")


def add_views(admin):
    from luffy.beat.admin_schedules import (
        ClockedScheduleView,
        CrontabScheduleView,
        IntervalScheduleView,
        SolarScheduleView,
    )
    from luffy.models.schedule import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        SolarSchedule,
    )

    category = "周期任务"
    admin.add_view(
        PeriodicTaskView(
            PeriodicTask, db.session, name="周期任务", endpoint="periodictask", category=category
        )
    )
    admin.add_view(
        IntervalScheduleView(
            IntervalSchedule,
            db.session,
            name="间隔调度",
            endpoint="intervalschedule",
            category=category,
        )
    )
    admin.add_view(
        CrontabScheduleView(
            CrontabSchedule,
            db.session,
            name="Crontab 调度",
            endpoint="crontabschedule",
            category=category,
        )
    )
    admin.add_view(
        ClockedScheduleView(
            ClockedSchedule,
            db.session,
            name="定时调度",
            endpoint="clockedschedule",
            category=category,
        )
    )
    admin.add_view(
        SolarScheduleView(
            SolarSchedule,
            db.session,
            name="太阳事件调度",
            endpoint="solarschedule",
            category=category,
        )
    )
