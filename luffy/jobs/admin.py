"""The admin page "任务队列" (``/admin/jobs/``), in the spirit of rq-dashboard: queues,
workers, every registry as a paginated list, and the actions an operator needs."""

import logging
import re

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_admin import expose
from sqlalchemy import select

from luffy.admin.security import SecureBaseView
from luffy.admin.times import show
from luffy.extensions import db
from luffy.jobs import actions, broker_queues, export, registries
from luffy.jobs.api import enqueue
from luffy.jobs.errors import NoSuchJobError
from luffy.jobs.job import Job
from luffy.jobs.workers import workers
from luffy.models import Sale

log = logging.getLogger(__name__)

QUEUE_NAME = re.compile(r"^[\w.:-]{1,100}$")
REGISTRY_LABELS = {
    "queued": "排队中",
    "scheduled": "定时",
    "started": "运行中",
    "deferred": "等待依赖",
    "finished": "已完成",
    "failed": "失败",
    "canceled": "已取消",
}
# Which actions each registry's list offers.
REGISTRY_ACTIONS = {
    "queued": ("cancel",),
    "scheduled": ("cancel",),
    "deferred": ("cancel",),
    "failed": ("requeue", "delete"),
    "finished": ("delete",),
}
ACTION_LABELS = {"requeue": "重新入队", "cancel": "取消运行", "delete": "删除"}


def checked_queue(queue):
    if not QUEUE_NAME.match(queue):
        abort(404)
    return queue


def page_number():
    value = request.args.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


class JobsView(SecureBaseView):
    """Queues, registries and workers; requeue, cancel, delete, empty; order exports."""

    @expose("/")
    def index(self):
        try:
            queues, error = registries.overview(), None
        except Exception as exc:  # broker or Redis down: say so, never a 500
            log.warning("Jobs overview unavailable: %s", exc)
            queues, error = [], f"{type(exc).__name__}: {exc}"
        found, workers_error = workers()
        sales = db.session.scalars(select(Sale).order_by(Sale.start_at.desc()).limit(50)).all()
        return self.render(
            "jobs/index.html",
            queues=queues,
            error=error,
            workers=found,
            workers_error=workers_error,
            registries=registries.REGISTRIES,
            labels=REGISTRY_LABELS,
            sales=sales,
        )

    @expose("/queue/<queue>/<registry>/")
    def registry(self, queue, registry):
        checked_queue(queue)
        if registry not in registries.REGISTRIES:
            abort(404)
        try:
            page = registries.list_jobs(queue, registry, page_number())
        except Exception as exc:
            log.warning("Registry %s/%s unavailable: %s", queue, registry, exc)
            flash(f"无法读取该列表：{type(exc).__name__}: {exc}", "error")
            return redirect(url_for(".index"))
        pages = max(1, -(-page["total"] // page["per_page"]))
        return self.render(
            "jobs/registry.html",
            queue=queue,
            registry=registry,
            label=REGISTRY_LABELS[registry],
            page=page,
            pages=pages,
            show=show,
            status_label=actions.label,
            actions=REGISTRY_ACTIONS.get(registry, ()),
            action_labels=ACTION_LABELS,
        )

    @expose("/action", methods=["POST"])
    def action(self):
        name = request.form.get("action", "")
        queue = checked_queue(request.form.get("queue", ""))
        registry = request.form.get("registry", "")
        back = (
            url_for(".registry", queue=queue, registry=registry)
            if registry in registries.REGISTRIES
            else url_for(".index")
        )
        limit = actions.MAX_IDS
        if name == "requeue_all":
            name, ids = "requeue", registries.ids_in(queue, registries.FAILED)
            limit = len(ids)
        else:
            ids = [i for i in request.form.getlist("ids") if i]
        if name not in actions.ACTIONS:
            flash("未知的操作", "error")
            return redirect(back)
        if not ids:
            flash("请先选择任务", "warning")
            return redirect(back)
        done, refused, error = actions.apply(name, ids, limit)
        if done:
            flash(f"{actions.ACTIONS[name][1]} {len(done)} 个任务", "success")
        for reason in refused[:10]:
            flash(reason, "warning")
        if len(refused) > 10:
            flash(f"另有 {len(refused) - 10} 个任务未处理", "warning")
        if error:
            flash(error, "error")
        return redirect(back)

    @expose("/queue/<queue>/empty", methods=["GET", "POST"])
    def empty(self, queue):
        checked_queue(queue)
        if not broker_queues.known(queue):
            abort(404)
        if request.method == "POST":
            try:
                removed = broker_queues.empty(queue)
            except Exception as exc:
                flash(f"任务队列不可用，未能清空 {queue}：{exc}", "error")
                return redirect(url_for(".index"))
            log.info("Admin emptied queue %s (%d messages)", queue, removed)
            flash(f"已清空队列 {queue}：移除了 {removed} 条消息", "success")
            return redirect(url_for(".index"))
        waiting = broker_queues.lengths([queue])[queue]["messages"]
        return self.render("jobs/empty.html", queue=queue, waiting=waiting)

    @expose("/export", methods=["POST"])
    def start_export(self):
        sale_id = request.form.get("sale_id", "")
        valid = sale_id.isascii() and sale_id.isdigit() and int(sale_id) <= 2**31 - 1
        sale = db.session.get(Sale, int(sale_id)) if valid else None
        if sale is None:
            flash("请选择一个秒杀活动", "error")
            return redirect(url_for(".index"))
        try:
            job = enqueue(
                export.TASK_NAME,
                sale.id,
                result_ttl=current_app.config["JOBS_EXPORT_TTL"],
                description=f"导出秒杀 #{sale.id} 的订单",
            )
        except Exception as exc:  # a bad sale id or the broker down: say so, never a 500
            log.warning("Export of sale %s not queued: %s", sale.id, exc)
            flash(f"导出任务未能提交：{exc}", "error")
            return redirect(url_for(".index"))
        return redirect(url_for(".export_page", job_id=job.id))

    def _export_job(self, job_id):
        try:
            job = Job.fetch(job_id)
        except NoSuchJobError:
            abort(404)
        if job.func_name != export.TASK_NAME:
            abort(404)
        return job

    @expose("/export/<job_id>")
    def export_page(self, job_id):
        job = self._export_job(job_id)
        return self.render(
            "jobs/export.html",
            job=job,
            status_url=url_for("tasks_api.task_detail", task_id=job.id),
            download_url=url_for(".download", job_id=job.id),
        )

    @expose("/export/<job_id>/download")
    def download(self, job_id):
        job = self._export_job(job_id)
        if job.get_status() != "finished":
            abort(404)
        path = export.file_for(job.id)
        if not path.is_file():
            abort(404)  # kept only for the job's result_ttl
        sale_id = (job.result or {}).get("sale_id", "")
        return send_file(
            path,
            mimetype="text/csv",
            as_attachment=True,
            download_name=f"sale-{sale_id}-orders.csv",
        )


def add_views(admin):
    admin.add_view(JobsView(name="任务队列", endpoint="jobs"))
