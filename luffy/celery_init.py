"""Celery bound to the Flask app: settings from ``app.config["CELERY"]``, tasks run in the app
context."""

import logging
from datetime import UTC, datetime

from celery import Celery, Task

from luffy.redis_urls import broker_settings

log = logging.getLogger(__name__)


class FlaskTask(Task):
    """Runs every task inside the Flask application context of the app that made the Celery app.

    A delayed task (eta/countdown) runs once even when the broker delivers it twice
    (luffy/delayed_runs.py). Failures mail a throttled alert to ALERT_EMAILS, retries are
    logged, and a task may opt in to a success notice with ``notify_on_success=True``. Celery
    calls these hooks outside ``__call__``, so each pushes the app context itself (outside it,
    Flask-Mail and the database cannot be reached).
    """

    abstract = True
    #: Mail ALERT_EMAILS when the task fails for good (after its last retry).
    alert_on_failure = True
    #: Mail ALERT_EMAILS when the task succeeds (opt-in, throttled like failures).
    notify_on_success = False

    def __call__(self, *args, **kwargs):
        with self.app.flask_app.app_context():
            if not self.request.eta:
                return self._run(args, kwargs)
            from luffy import delayed_runs

            delayed_runs.claim(self)  # a second delivery of a delayed task is skipped
            try:
                return self._run(args, kwargs)
            finally:
                delayed_runs.finish(self)

    def _run(self, args, kwargs):
        # A job enqueued with retry=Retry(...) (luffy/jobs/) retries on its own intervals.
        retry = (getattr(self.request, "luffy_job", None) or {}).get("retry")
        if retry:
            from luffy.jobs.worker import run_with_retry

            return run_with_retry(self, retry, super().__call__, args, kwargs)
        return super().__call__(*args, **kwargs)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        log.warning(
            "Task %s[%s] will retry (attempt %s): %r",
            self.name,
            task_id,
            (self.request.retries or 0) + 1,
            exc,
        )

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if not self.alert_on_failure:
            return
        from luffy.alerts import send_alert

        try:
            with self.app.flask_app.app_context():
                send_alert(
                    f"任务失败：{self.name}",
                    failure_report(self, exc, task_id, args, kwargs, einfo),
                    throttle_key=f"task-failure:{self.name}",
                )
        except Exception:  # an alert never crashes the worker
            log.exception("Failure alert for %s[%s] not sent", self.name, task_id)

    def on_success(self, retval, task_id, args, kwargs):
        if not self.notify_on_success:
            return
        from luffy.alerts import send_alert

        try:
            with self.app.flask_app.app_context():
                send_alert(
                    f"任务成功：{self.name}",
                    f"任务 {self.name}[{task_id}] 已完成。\n参数：{args!r}\n"
                    f"关键字参数：{kwargs!r}\n"
                    f"结果：{retval!r}\n工作进程：{self.request.hostname}\n时间：{_now()}",
                    throttle_key=f"task-success:{self.name}",
                )
        except Exception:
            log.exception("Success notice for %s[%s] not sent", self.name, task_id)


def _now():
    return datetime.now(UTC).isoformat(timespec="seconds")


def failure_report(task, exc, task_id, args, kwargs, einfo):
    """The alert mail's body: what failed, with what, where, when and why."""
    return (
        f"任务：{task.name}\n"
        f"任务 ID：{task_id}\n"
        f"参数：{args!r}\n"
        f"关键字参数：{kwargs!r}\n"
        f"异常：{type(exc).__name__}: {exc}\n"
        f"工作进程：{task.request.hostname}\n"
        f"重试次数：{task.request.retries or 0}\n"
        f"时间：{_now()}\n\n"
        f"Traceback:\n{einfo.traceback if einfo is not None else ''}"
    )


def with_sentinel_broker(settings):
    """``settings`` with a ``redis+sentinel://`` broker URL written the way kombu reads it."""
    broker_url, transport_options = broker_settings(settings["broker_url"])
    if not transport_options:
        return settings
    options = {**settings.get("broker_transport_options", {}), **transport_options}
    # Celery prefers the CELERY_BROKER_URL environment variable to ``broker_url`` (its
    # Settings.broker_url reads the environment first), and that variable holds Luffy's form;
    # the read and write URLs are taken before either, so they carry kombu's form.
    return {
        **settings,
        "broker_url": broker_url,
        "broker_read_url": broker_url,
        "broker_write_url": broker_url,
        "broker_transport_options": options,
    }


def celery_init_app(app):
    """Create the Celery app for ``app``, make it the default for ``shared_task``, and return it."""
    from luffy import celery_results  # noqa: F401  (connects the delayed-task signal)
    from luffy.jobs import records, worker  # noqa: F401  (job records; the worker's job hooks)

    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.config_from_object(with_sentinel_broker(app.config["CELERY"]))
    celery_app.flask_app = app
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
