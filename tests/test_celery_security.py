"""Celery seen through its own tools: queue bindings, `celery result`, SENT counts of
short-lived publishers, and SMS codes kept out of task arguments, results and logs."""

import json
import shutil
import subprocess
import sys
import time
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from conftest import ROOT, login
from kombu import Connection, Exchange, Producer
from live_servers import BIN, environment, wait_until

from config import TASK_QUEUES, celery_settings


# -- each queue bound to its own routing key ----------------------------------------------
@pytest.fixture
def private_broker_url(app, redis_port):
    """A broker no worker of the session consumes from: another Redis db, or a new vhost."""
    url = app.config["CELERY"]["broker_url"]
    parts = urlsplit(url)
    if not parts.scheme.startswith(("amqp", "pyamqp")):
        yield f"redis://127.0.0.1:{redis_port}/7"
        return
    if not shutil.which("rabbitmqctl"):
        pytest.skip("rabbitmqctl not found: no private vhost for the binding test")
    vhost = f"luffy_bindings_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    user = parts.username or "guest"
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
        check=True,
        timeout=60,
    )
    try:
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)


def queue_lengths(connection, queues):
    channel = connection.default_channel
    return {q.name: q(channel).queue_declare().message_count for q in queues}


def test_a_message_for_exchange_default_key_default_reaches_the_default_queue_only(
    private_broker_url,
):
    queues = celery_settings(private_broker_url, "x", "UTC", 60, "/tmp")["task_queues"]
    assert [q.name for q in queues] == list(TASK_QUEUES)
    with Connection(private_broker_url) as connection:
        channel = connection.default_channel
        for queue in queues:
            queue(channel).declare()
        try:
            producer = Producer(channel)
            producer.publish(
                {"probe": 1}, exchange=Exchange("default", type="direct"), routing_key="default"
            )
            producer.publish(
                {"probe": 2}, exchange=Exchange("notify", type="direct"), routing_key="notify"
            )

            def delivered():
                lengths = queue_lengths(connection, queues)
                return lengths if sum(lengths.values()) >= 2 else None

            lengths = wait_until(delivered, timeout=10, message="both messages queued")
            time.sleep(0.3)  # anything copied elsewhere would have arrived by now
            assert queue_lengths(connection, queues) == {
                "default": 1,
                "seckill": 0,
                "notify": 1,
                "periodic": 0,
            }, lengths
        finally:
            for queue in queues:
                queue(channel).delete()


def test_routed_tasks_name_their_own_exchange_and_key(app):
    celery_app = app.extensions["celery"]
    route = celery_app.amqp.router.route({}, "tasks.order.send_sms")
    assert route["queue"].name == "notify"
    assert route["queue"].exchange.name == "notify"
    assert route["queue"].routing_key == "notify"


# -- `celery -A tasks result` knows the task modules --------------------------------------
def test_celery_result_command_finds_the_task(app, worker):
    from luffy.broker import publish

    with app.app_context():
        result = publish("tasks.user.add", (2, 3))
    assert result.get(timeout=30) == 5
    answer = subprocess.run(
        [str(BIN / "celery"), "-A", "tasks", "result", "-t", "tasks.user.add", result.id],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert answer.stdout.strip() == "5"


# -- SENT counts of a short-lived publisher -----------------------------------------------
def test_a_short_lived_publisher_flushes_its_sent_count_at_exit(app, redis_client):
    from luffy.metrics import COUNTERS_KEY, field_for

    name = "tests.tasks_for_tests.never_run_by_name"
    field = field_for("tasks", sorted({"name": name, "state": "SENT"}.items()))
    code = (
        "from luffy import create_app\n"
        "from luffy.broker import publish\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        f"    for _ in range(3): publish({name!r}, queue='luffy-test-nobody')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert int(redis_client.hget(COUNTERS_KEY, field) or 0) == 3


# -- SMS codes are not task arguments -----------------------------------------------------
def test_an_sms_code_is_in_no_task_argument_result_or_worker_log(app, users, redis_client, worker):
    client = login(app.test_client(), "buyer", "buyer-password")
    page = client.get("/").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    response = client.post(
        "/api/v1/user/sms/", json={"mobile": "13912345678"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200, response.get_json()
    task_id = response.get_json()["task_id"]
    code = redis_client.get("luffy:sms:code:13912345678").decode()

    from luffy.extensions import db
    from luffy.models import TaskResult

    def stored_row():
        with app.app_context():
            row = db.session.scalar(db.select(TaskResult).where(TaskResult.task_id == task_id))
            return row if row is not None and row.state == "SUCCESS" else None

    row = wait_until(stored_row, timeout=30, message="the task's result row")
    assert json.loads(row.args) == ["13912345678"]
    assert code not in row.args + row.kwargs + (row.result or "")
    # The only line holding the code is the development console backend's "text message"
    # (what a phone would get); Celery's own lines (received, succeeded) do not.
    lines = [
        line
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if code in line and task_id not in line
    ]
    assert all("SMS to 13912345678: 【路飞学城】您的验证码是" in line for line in lines), lines
    received = [
        line for line in worker.log_path.read_text(errors="replace").splitlines() if task_id in line
    ]
    assert received and not any(code in line for line in received)


def test_the_console_sms_backend_hides_digits_in_production(app, caplog, monkeypatch):
    from luffy.sms import ConsoleSmsBackend

    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    with caplog.at_level("INFO", logger="luffy.sms"):
        ConsoleSmsBackend(app).send("13912345678", "您的验证码是 123456")
    assert "123456" not in caplog.text and "139****5678" in caplog.text
