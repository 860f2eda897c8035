"""Admin view of task results: read-only, with retry and revoke actions.

Built for a table of millions of rows: every filter and sort the list offers has an index
(see ``luffy.models.task_result``), the search is the beginning of a task id or name, and the total
is never a full ``count(*)``: capped at 10,000 for a filtered list ("10000+"), PostgreSQL's
estimate for the whole table ("约 1000000"), exact when small (``luffy.result_queries``).
"""

import json
import logging

from celery import states
from flask import current_app, flash
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEqual, FilterInList
from markupsafe import Markup, escape
from sqlalchemy import func, or_
from sqlalchemy.orm import Query

from luffy.admin.security import SecureModelView
from luffy.broker import BrokerUnavailable, publish, quick_connection
from luffy.dashboard.task_words import (
    STATE_LABELS,
    args_detail,
    args_formatter,
    clipped,
    short_id,
    state_badge,
)
from luffy.extensions import db
from luffy.models import TaskResult
from luffy.result_queries import list_count

log = logging.getLogger(__name__)

RETRYABLE = {states.FAILURE, states.REVOKED}
REVOCABLE = {states.PENDING, states.RECEIVED, states.STARTED, states.RETRY}


def _pre(view, context, model, name):
    value = getattr(model, name)
    return Markup("<pre class='pre-wrap'>%s</pre>") % escape(value or "")


class CountQuery(Query):
    """Flask-Admin's count query (filters applied as usual), answered by ``list_count``."""

    def scalar(self):
        return list_count(self.session, self.whereclause)


def _filters():
    """Equality and lists only on the text columns: each is the lead of an index, where
    "contains" would read every row."""
    labels = {"state": "状态", "task_name": "任务名", "periodic_task_name": "周期任务"}
    found = []
    for name, label in labels.items():
        column = getattr(TaskResult, name)
        # The state filter is a choice list of states in words (``flt0_0=FAILURE``).
        options = tuple(STATE_LABELS.items()) if name == "state" else None
        found += [FilterEqual(column, label, options=options), FilterInList(column, label)]
    return (*found, "created_at", "date_done")


class TaskResultView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
    # The list fits the page: long values are clipped (whole on hover and on the row's page).
    column_list = (
        "task_name",
        "periodic_task_name",
        "state",
        "args",
        "worker",
        "created_at",
        "task_id",
    )
    column_details_list = (
        "task_id",
        "task_name",
        "periodic_task_name",
        "state",
        "worker",
        "queue",
        "args",
        "kwargs",
        "result",
        "retries",
        "created_at",
        "started_at",
        "date_done",
        "traceback",
    )
    column_default_sort = ("created_at", True)
    column_sortable_list = ("task_name", "state", "created_at", "date_done")
    column_searchable_list = ("task_id", "task_name")
    column_filters = _filters()
    column_formatters = {
        "state": state_badge,
        "args": args_formatter,
        "task_id": short_id,
        "worker": clipped,
        "periodic_task_name": clipped,
    }
    column_formatters_detail = {
        "traceback": _pre,
        "result": _pre,
        "state": state_badge,
        "args": args_detail,
        "kwargs": args_detail,
    }
    column_labels = {
        "task_id": "任务 ID",
        "task_name": "任务名",
        "periodic_task_name": "周期任务",
        "args": "参数",
        "kwargs": "关键字参数",
        "state": "状态",
        "worker": "工作进程",
        "queue": "队列",
        "retries": "重试次数",
        "result": "结果",
        "traceback": "异常堆栈",
        "created_at": "创建时间",
        "started_at": "开始时间",
        "date_done": "完成时间",
    }

    def search_placeholder(self):
        return "任务 ID 或任务名（开头部分）"

    def get_count_query(self):
        session = self.session() if callable(self.session) else self.session
        return CountQuery([func.count("*")], session).select_from(TaskResult)

    def _apply_search(self, query, count_query, joins, count_joins, search):
        """A task id or task name, or its beginning."""
        term = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # Both prefixes read an index ("contains" would read every row).
        condition = or_(
            TaskResult.task_id.like(f"{term}%", escape="\\"),
            TaskResult.task_name.like(f"{term}%", escape="\\"),
        )
        return query.filter(condition), count_query.filter(condition), joins, count_joins

    def _rows(self, ids):
        wanted = [int(i) for i in ids if str(i).isdigit()]
        return db.session.scalars(db.select(TaskResult).where(TaskResult.id.in_(wanted))).all()

    @action("retry", "用相同参数重试", "用相同的参数重新执行选中的失败任务？")
    def action_retry(self, ids):
        queued, skipped = [], 0
        for row in self._rows(ids):
            if row.state not in RETRYABLE or not row.task_name:
                skipped += 1
                continue
            try:
                result = publish(
                    row.task_name,
                    json.loads(row.args or "[]"),
                    json.loads(row.kwargs or "{}"),
                    queue=row.queue or None,
                )
            except BrokerUnavailable as error:
                log.warning("Admin retry of %s[%s] failed: %s", row.task_name, row.task_id, error)
                flash(f"任务队列不可用，{row.task_name} 未能重试：{error}", "error")
                break
            queued.append(result.id)
            log.info("Admin retried %s[%s] as %s", row.task_name, row.task_id, result.id)
        if queued:
            flash(f"已重新提交 {len(queued)} 个任务：{'、'.join(queued)}", "success")
        if skipped:
            flash(f"{skipped} 个任务不是失败或已撤销状态，未重试", "warning")

    @action("revoke", "撤销/终止", "撤销选中的等待中任务，并终止正在运行的任务？")
    def action_revoke(self, ids):
        celery_app = current_app.extensions["celery"]
        revoked, skipped = 0, 0
        for row in self._rows(ids):
            if row.state not in REVOCABLE:
                skipped += 1
                continue
            # Workers drop a revoked message when it comes due and kill a running one;
            # the revoke lives in worker memory (persisted with `worker --statedb`).
            try:
                with quick_connection() as connection:
                    celery_app.control.revoke(
                        row.task_id, terminate=True, signal="SIGTERM", connection=connection
                    )
            except Exception as error:  # broker down or hung: say so, never a 500
                log.warning("Admin revoke of %s[%s] failed: %s", row.task_name, row.task_id, error)
                flash(f"任务队列不可用，{row.task_id} 未能撤销：{error}", "error")
                break
            celery_app.backend.mark_as_revoked(row.task_id, "revoked in the admin")
            revoked += 1
            log.info("Admin revoked %s[%s]", row.task_name, row.task_id)
        db.session.expire_all()
        if revoked:
            flash(f"已撤销 {revoked} 个任务", "success")
        if skipped:
            flash(f"{skipped} 个任务已结束，无需撤销", "warning")
