"""The admin home (/admin/): a summary with links into the admin, instead of a blank page."""

from flask import current_app
from flask_admin import expose

from luffy.admin import summary
from luffy.admin.security import SecureAdminIndexView
from luffy.dashboard import services as monitoring
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
        app = current_app._get_current_object()
        seconds = current_app.config["MONITOR_INSPECT_TIMEOUT"] + 0.8
        try:
            online = monitoring.call_with_deadline(seconds, monitoring.workers_online, app=app)
        except Exception as error:  # the broker down or slow: say so in words
            return refusal(503, f"无法询问工作进程：{monitoring.describe(error)}")
        return ok("查询成功", online=online)
