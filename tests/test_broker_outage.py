"""Web requests that queue a task, against a broker that refuses or hangs: a quick clear answer.

Each test builds an app whose broker URL points at a port nobody listens on ("refused") or
at a socket that accepts and never answers ("hung", the worse case: only timeouts end it),
for the Redis and the AMQP transports. The e-mail and SMS routes answer 503, and the admin
actions that send (retry, revoke, run now) flash an error; each within 2 seconds, none 500s.
"""

import json
import re
import socket
import threading
import time

import pytest
from conftest import csrf_token_from, login, restore_celery
from local_redis import free_port
from sqlalchemy import select

from luffy.extensions import db
from luffy.models import IntervalSchedule, PeriodicTask, TaskResult

BOUND_SECONDS = 2.0
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class SilentServer:
    """Accepts connections on loopback and never sends a byte back."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self):
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture(params=["redis-refused", "redis-hung", "amqp-refused", "amqp-hung"])
def dead_broker_app(request, app, users, monkeypatch):
    from config import TestingConfig
    from luffy import create_app

    scheme, outage = request.param.split("-")
    server = SilentServer() if outage == "hung" else None
    port = server.port if server else free_port()
    url = (
        f"redis://127.0.0.1:{port}/1"
        if scheme == "redis"
        else f"amqp://guest:guest@127.0.0.1:{port}//"
    )
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    broken = create_app(TestingConfig)
    try:
        yield broken
    finally:
        restore_celery(app)  # shared tasks follow the newest Celery app otherwise
        if server:
            server.close()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_mail_and_sms_routes_answer_503_in_time(dead_broker_app, redis_client):
    client = login(dead_broker_app.test_client(), "root", "root-password")
    mail = {"to": "someone@example.com", "subject": "hi", "message": "hello"}
    for path, body in (
        ("/api/v1/user/email/", mail),
        ("/api/v1/user/sms/", {"mobile": "13912345670"}),
    ):
        token = META_TOKEN.search(client.get("/").get_data(as_text=True)).group(1)
        response, seconds = timed(
            lambda path=path, body=body, token=token: client.post(
                path, json=body, headers={"X-CSRFToken": token}
            )
        )
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        assert response.get_json()["code"] == 153 and response.get_json()["msg"]
        assert seconds < BOUND_SECONDS, (path, seconds)
    # The refused request leaves no rate limit behind: asking again is allowed at once.
    assert not redis_client.exists("luffy:sms:mobile:13912345670")
    assert int(redis_client.get("luffy:sms:addr:127.0.0.1") or 0) == 0


def admin_action(client, view, action, *row_ids):
    token = csrf_token_from(client.get(f"/admin/{view}/").get_data(as_text=True))
    rows = [str(row_id) for row_id in row_ids]
    return timed(
        lambda: client.post(
            f"/admin/{view}/action/",
            follow_redirects=True,
            data={"action": action, "rowid": rows, "csrf_token": token},
        )
    )


def add_result(app, state):
    with app.app_context():
        row = TaskResult(
            task_id=f"outage-{state}-{time.monotonic_ns()}",
            task_name="tasks.user.add",
            args=json.dumps([1, 2]),
            state=state,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def test_admin_retry_and_revoke_flash_an_error_in_time(dead_broker_app):
    client = login(dead_broker_app.test_client(), "root", "root-password")
    failed, pending = add_result(dead_broker_app, "FAILURE"), add_result(dead_broker_app, "PENDING")

    page, seconds = admin_action(client, "taskresult", "retry", failed)
    assert page.status_code == 200 and seconds < BOUND_SECONDS, (page.status_code, seconds)
    assert "任务队列不可用" in page.get_data(as_text=True)

    page, seconds = admin_action(client, "taskresult", "revoke", pending)
    assert page.status_code == 200 and seconds < BOUND_SECONDS, (page.status_code, seconds)
    assert "任务队列不可用" in page.get_data(as_text=True)
    with dead_broker_app.app_context():  # not marked revoked: the workers were never told
        assert db.session.get(TaskResult, pending).state == "PENDING"


def test_admin_run_now_flashes_an_error_in_time(dead_broker_app):
    client = login(dead_broker_app.test_client(), "root", "root-password")
    with dead_broker_app.app_context():
        rows = [
            PeriodicTask(
                name=f"outage-run-now-{n}",
                task="tasks.user.add",
                args="[1, 2]",
                interval=IntervalSchedule(every=1, period="hours"),
            )
            for n in range(3)
        ]
        db.session.add_all(rows)
        db.session.commit()
        row_ids = [row.id for row in rows]

    # Three rows selected: the first failure stops the action (the others would wait too).
    page, seconds = admin_action(client, "periodictask", "run_now", *row_ids)
    assert page.status_code == 200 and seconds < BOUND_SECONDS, (page.status_code, seconds)
    assert page.get_data(as_text=True).count("发送失败") == 1
    with dead_broker_app.app_context():
        counts = db.session.scalars(
            select(PeriodicTask.total_run_count).where(PeriodicTask.id.in_(row_ids))
        )
        assert set(counts) == {0}
