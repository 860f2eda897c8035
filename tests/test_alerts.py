"""Failure alerts by e-mail: content, throttling, success notices and an SMTP outage."""

import socket
import time

from conftest import start_worker, stop_worker


def fail(app, tag, queue=None):
    options = {"queue": queue} if queue else {}
    return app.extensions["celery"].send_task(
        "tests.fails", args=[tag], kwargs={"why": "test"}, **options
    )


def test_a_failing_task_mails_an_alert_with_the_traceback(app, worker, mailbox):
    result = fail(app, "alert")
    message = mailbox.wait_for(1)[0]
    body = message.get_content()
    assert message.envelope_to == ["ops@luffy.test"]
    assert "tests.fails" in message["Subject"]
    for expected in (
        result.id,
        "['alert']",
        "{'why': 'test'}",
        "RuntimeError: boom alert",
        "Traceback (most recent call last)",
        worker.hostname,
    ):
        assert expected in body, expected


def test_many_failures_make_one_mail_per_window(app, worker, mailbox):
    results = [fail(app, f"storm-{i}") for i in range(40)]
    for result in results:
        result.get(timeout=60, propagate=False)
    time.sleep(2)  # any extra mail would have arrived by now
    assert len([m for m in mailbox.messages if "tests.fails" in m["Subject"]]) == 1


def test_a_throttled_burst_is_counted_in_the_summary_after_the_window(
    app, worker, mailbox, monkeypatch
):
    """1,000 alerts in a burst: one mail at once, then one summary counting the other 999."""
    from luffy.alerts import send_alert

    monkeypatch.setitem(app.config, "ALERT_THROTTLE_SECONDS", 2)
    with app.app_context():
        sent = [
            send_alert("对账不一致", f"sale 7 mismatch #{i}", throttle_key="reconcile:7")
            for i in range(1000)
        ]
    assert sent.count(True) == 1
    first, summary = mailbox.wait_for(2, timeout=30)
    assert "reconcile" not in first["Subject"] and "对账不一致" in first["Subject"]
    assert "999" in summary["Subject"] and "999" in summary.get_content()
    assert "mismatch #999" in summary.get_content()  # the latest occurrence's details
    time.sleep(3)
    assert len(mailbox.messages) == 2


def test_success_notices_are_opt_in(app, worker, mailbox):
    from tasks.user import add

    celery_app = app.extensions["celery"]
    assert add.delay(1, 1).get(timeout=30) == 2
    assert celery_app.send_task("tests.notify_success", args=[21]).get(timeout=30) == 42
    message = mailbox.wait_for(1)[0]
    time.sleep(1)
    notices = [m for m in mailbox.messages if "任务成功" in m["Subject"]]
    assert len(notices) == 1  # only the task that opted in
    assert "tests.notify_success" in message["Subject"]


def test_alert_smtp_down_is_logged_and_the_worker_survives(app):
    """The SMTP server accepts connections but never answers: the alert gives up after
    MAIL_TIMEOUT, the failure is logged, and the worker goes on running tasks."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    queue = "smtp-down-test"
    process = start_worker(
        app,
        "-c",
        "1",
        "-Q",
        queue,
        env={"MAIL_PORT": str(silent.getsockname()[1]), "MAIL_TIMEOUT": "1"},
    )
    try:
        celery_app = app.extensions["celery"]
        for i in range(3):
            fail(app, f"down-{i}", queue=queue).get(timeout=60, propagate=False)
        started = time.monotonic()
        assert celery_app.send_task("tasks.user.add", args=[2, 2], queue=queue).get(timeout=30) == 4
        assert time.monotonic() - started < 10
        assert process.poll() is None
        log = process.log_path.read_text(errors="replace")
        assert "could not be sent" in log
    finally:
        stop_worker(process)
        silent.close()
