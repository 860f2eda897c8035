"""Admin views of monitoring: the task dashboard (``/admin/monitor/``: a page, its JSON, worker
controls) and the task results Celery keeps in the database (dashboard/task_results.py)."""

import re
from datetime import datetime

from flask import current_app, request, url_for
from flask_admin import expose

from luffy.admin.security import SecureBaseView
from luffy.admin.times import show
from luffy.dashboard import charts, live, services
from luffy.dashboard.task_words import STATE_LABELS, readable_json
from luffy.extensions import db
from luffy.models import Sale
from luffy.models.base import utcnow
from luffy.responses import ApiError, ok, refusal
from luffy.tasks_api.services import task_was_issued

HOSTNAME = re.compile(r"^[\w.@-]{1,200}$")
TASK_ID = re.compile(r"^[\w-]{1,155}$")
TASK_NAME = re.compile(r"^[\w.]{1,255}$")
# Celery's rate syntax: "10", "10/s", "100/m", "1000/h"; "0" or "" lifts the limit.
RATE = re.compile(r"^(\d{1,6}(\.\d{1,3})?(/[smh])?)?$")
MAX_POOL_STEP = 16


def form_value(name, default=None):
    """A field from a JSON body or a form post."""
    body = request.get_json(silent=True)
    source = body if isinstance(body, dict) else request.form
    value = source.get(name, default)
    return value.strip() if isinstance(value, str) else value


def as_bool(value):
    return value is True or str(value).strip().lower() in {"1", "true", "yes", "on", "y"}


def worker_answer(replies, hostname=None):
    """ok when every addressed worker said ok, else a 503/409 refusal carrying their replies."""
    if not replies:
        return refusal(503, "没有工作进程响应", replies={})
    errors = {host: reply.get("error") for host, reply in replies.items() if "error" in reply}
    if errors:
        return refusal(
            409,
            "工作进程拒绝了该操作：" + "; ".join(f"{h}: {e}" for h, e in errors.items()),
            replies=replies,
        )
    return ok("已发送", replies=replies)


def name_sales(sales):
    """Give each running sale its course's name (the dashboard shows names, not ids)."""
    for entry in sales:
        if not entry.get("name"):
            sale = db.session.get(Sale, entry["id"]) if isinstance(entry["id"], int) else None
            entry["name"] = sale.course.name if sale is not None and sale.course else None


def readable_detail(detail):
    """A task's row as the traceback page shows it: site-zone times, readable arguments."""
    detail = dict(detail)
    for key in ("created_at", "started_at", "date_done"):
        if detail.get(key):
            detail[key] = show(datetime.fromisoformat(detail[key]))
    for key in ("args", "kwargs", "result"):
        if detail.get(key):
            detail[key] = readable_json(detail[key])
    detail["state_text"] = STATE_LABELS.get(detail["state"], detail["state"])
    return detail


class DashboardView(SecureBaseView):
    """Workers, queues, task history, beat and flash sales; refreshed by static/js/dashboard.js."""

    @expose("/")
    def index(self):
        return self.render(
            "dashboard/index.html",
            data_url=url_for(".data"),
            refresh_seconds=5,
            task_results_url=self._task_results_url(),
        )

    @expose("/data")
    def data(self):
        sections = services.dashboard()
        tasks = sections["tasks"]
        if tasks["ok"]:
            history = tasks["data"]
            history["state_chart"] = charts.state_bars(
                history["counts"]["last_hour"], history["counts"]["last_day"]
            )
            history["throughput_chart"] = charts.throughput_bars(history["throughput"])
            history["last_minute"] = (
                history["throughput"][-1]["count"] if history["throughput"] else 0
            )
            for failure in history["failures"]:
                failure["url"] = url_for(".task", task_id=failure["task_id"])
        if sections["sales"]["ok"]:
            name_sales(sections["sales"]["data"])
        return ok(sections=sections, now=services.plain(utcnow()))

    @expose("/tasks/<task_id>")
    def task(self, task_id):
        detail = services.task_detail(task_id) if TASK_ID.match(task_id) else None
        status = 200 if detail else 404
        if detail:
            detail = readable_detail(detail)
        page = self.render(
            "dashboard/task.html",
            task_id=task_id,
            detail=detail,
            admin_url=self._task_result_admin_url(detail),
        )
        return page, status

    @expose("/workers/pool", methods=["POST"])
    def pool(self):
        hostname = form_value("hostname") or ""
        action = form_value("action")
        try:
            n = int(form_value("n", 1))
        except (TypeError, ValueError):
            n = 0
        if (
            not HOSTNAME.match(hostname)
            or action not in {"grow", "shrink"}
            or not 1 <= n <= MAX_POOL_STEP
        ):
            return refusal(
                400, f"需要 hostname、action（grow 或 shrink）和 1 到 {MAX_POOL_STEP} 之间的 n"
            )
        command = services.grow_pool if action == "grow" else services.shrink_pool
        return self._send(command, hostname, n)

    @expose("/rate-limit", methods=["POST"])
    def rate_limit(self):
        task_name = form_value("task_name") or ""
        rate = form_value("rate") or ""
        hostname = form_value("hostname") or None
        if (
            not TASK_NAME.match(task_name)
            or not RATE.match(rate)
            or (hostname and not HOSTNAME.match(hostname))
        ):
            return refusal(400, "需要任务名和速率（如 10/s、100/m、1000/h；0 表示不限）")
        return self._send(services.set_rate_limit, task_name, rate or "0", hostname)

    @expose("/tasks/<task_id>/revoke", methods=["POST"])
    def revoke(self, task_id):
        if not TASK_ID.match(task_id):
            return refusal(400, "任务 ID 不正确")
        try:
            known = task_was_issued(task_id)
        except ApiError:
            known = None  # cannot tell now; the revoke itself still goes out
        answer, status = self._send(
            services.revoke, task_id, as_bool(form_value("terminate", False))
        )
        if known is not False:
            return answer, status
        # Still revoked (another process may send it later), but the admin is told.
        body = answer.get_json()
        note = f"本站没有发出过任务 {task_id}（ID 输错了，或它已过期）"
        if status != 200:
            return refusal(status, f"{note}；{body['msg']}", known=False)
        return ok(
            f"{note}；已通知工作进程：这个 ID 的任务一旦出现就丢弃",
            known=False,
            replies=body.get("replies", {}),
        )

    def _send(self, command, *args):
        app = current_app._get_current_object()
        seconds = current_app.config["MONITOR_INSPECT_TIMEOUT"] + 0.8
        try:
            replies = services.call_with_deadline(seconds, command, *args, app=app)
        except services.Unavailable as error:
            return refusal(503, f"消息代理或工作进程无响应：{error}")
        except Exception as error:  # a broker error is an answer, never a 500
            return refusal(503, f"消息代理或工作进程无响应：{live.describe(error)}")
        return worker_answer(replies)

    # The task results list belongs to the results admin view; link to it when it exists.
    def _results_view(self):
        for view in self.admin._views:
            if getattr(view, "model", None) is services.TaskResult:
                return view
        return None

    def _task_results_url(self):
        view = self._results_view()
        return url_for(f"{view.endpoint}.index_view") if view else None

    def _task_result_admin_url(self, detail):
        view = self._results_view()
        if view is None or not detail:
            return None
        return url_for(f"{view.endpoint}.details_view", id=detail["id"])


def add_views(admin):
    from luffy.dashboard.task_results import TaskResultView
    from luffy.extensions import db
    from luffy.models import TaskResult

    admin.add_view(TaskResultView(TaskResult, db.session, name="任务结果", endpoint="taskresult"))
    admin.add_view(DashboardView(name="任务监控", endpoint="monitor"))
