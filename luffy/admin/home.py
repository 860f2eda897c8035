"""The admin home (/admin/): a summary with links into the admin, instead of a blank page."""

from concurrent.futures import TimeoutError as FutureTimeout

from flask import current_app
from flask_admin import expose

from luffy.admin import summary
from luffy.admin.security import SecureAdminIndexView
from luffy.dashboard.live import live_state
from luffy.responses import ok, refusal


class AdminHomeView(SecureAdminIndexView):
    @expose("/")
    def index(self):
        return self.render(
            "admin/luffy_index.html",
            orders_today=summary.orders_today(),
            failed_tasks=summary.failed_tasks_recently(),
            live_sales=summary.live_sales(),
            next_runs=summary.next_runs(),
        )

    @expose("/workers")
    def workers(self):
        """How many workers answer a ping; asked by the page so it never waits for them."""
        seconds = current_app.config["MONITOR_INSPECT_TIMEOUT"] + 0.8
        try:  # a fresh look through the dashboard's shared background snapshot
            snapshot = live_state().refresh().result(timeout=seconds)
        except FutureTimeout:
            return refusal(503, "工作进程还没有回答，请稍后再看")
        if not snapshot.workers["ok"]:  # the broker down or slow: say so in words
            return refusal(503, f"无法询问工作进程：{snapshot.workers['error']}")
        return ok("查询成功", online=snapshot.workers_online)
