"""Queued e-mail (admins only, retried on SMTP errors) and SMS codes (validated, rate limited)."""

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import start_worker, stop_worker

META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def api_token(client):
    """The CSRF token the site's pages carry for their JSON calls (sent as X-CSRFToken)."""
    match = META_TOKEN.search(client.get("/").get_data(as_text=True))
    assert match
    return match.group(1)


def post(client, url, body, token=None):
    headers = {"X-CSRFToken": token or api_token(client)}
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


MAIL = {"to": "alice@example.com", "subject": "课程更新", "message": "第 3 章已上线。\n<b>欢迎</b>"}


# -- e-mail ------------------------------------------------------------------------
def test_email_endpoint_needs_login(client):
    response = post(client, "/api/v1/user/email/", MAIL)
    assert response.status_code == 401
    assert response.get_json()["code"] == 102


def test_email_endpoint_refuses_non_admins(buyer_client, admin_client, worker, mailbox):
    response = post(buyer_client, "/api/v1/user/email/", MAIL)
    assert response.status_code == 403
    # A worker runs, so a mail the refusal had queued anyway would arrive: send one that is
    # allowed after it and check it is the only one that arrives.
    allowed = {**MAIL, "to": "allowed@example.com"}
    assert post(admin_client, "/api/v1/user/email/", allowed).status_code == 200
    mailbox.wait_for(1)
    time.sleep(1)  # anything queued before the allowed mail has arrived by now
    assert [message.envelope_to for message in mailbox.messages] == [["allowed@example.com"]]


def test_email_endpoint_needs_the_csrf_header(admin_client):
    response = admin_client.post("/api/v1/user/email/", json=MAIL)
    assert response.status_code == 400


def test_admin_queues_a_templated_mail(app, admin_client, worker, mailbox):
    response = post(admin_client, "/api/v1/user/email/", MAIL)
    assert response.status_code == 200, response.get_data(as_text=True)
    task_id = response.get_json()["task_id"]
    message = mailbox.wait_for(1)[0]
    assert message.envelope_to == ["alice@example.com"]
    assert message["Subject"] == "课程更新"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "第 3 章已上线。" in text and "<b>欢迎</b>" in text
    assert "&lt;b&gt;欢迎&lt;/b&gt;" in html  # escaped in the HTML part
    deadline = time.monotonic() + 10
    while admin_client.get(f"/api/v1/tasks/{task_id}/").get_json()["state"] != "SUCCESS":
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"to": "not-an-address", "subject": "s", "message": "m"},
        {"to": "a@example.com", "subject": "bad\r\nBcc: x@example.com", "message": "m"},
        {"to": "a@example.com", "subject": "s" * 201, "message": "m"},
        {"to": "a@example.com", "subject": "s", "message": 42},
        {"to": ["a@example.com"], "subject": "s", "message": "m"},
        [1, 2],
        {**MAIL, "countdown": -1},
        {**MAIL, "countdown": "10"},
        {**MAIL, "countdown": 8 * 86400},
        {**MAIL, "eta": "tomorrow"},
        {**MAIL, "eta": "2099-01-01T00:00:00"},
        {**MAIL, "eta": "2026-01-01T00:00:00", "countdown": 5},
    ],
)
def test_email_endpoint_refuses_bad_input(admin_client, body):
    response = post(admin_client, "/api/v1/user/email/", body)
    assert response.status_code == 400
    assert response.get_json()["code"] == 101


def test_a_mail_can_be_sent_later_at_an_eta_in_the_configured_time_zone(
    app, admin_client, worker, mailbox
):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    # A naive time is Asia/Shanghai time (TIMEZONE), as a user of the site would write it.
    eta = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) + timedelta(seconds=3)
    response = post(admin_client, "/api/v1/user/email/", {**MAIL, "eta": eta.isoformat()})
    assert response.status_code == 200
    task_id = response.get_json()["task_id"]
    time.sleep(1)
    assert admin_client.get(f"/api/v1/tasks/{task_id}/").get_json()["state"] == "PENDING"
    assert mailbox.messages == []
    mailbox.wait_for(1)


def test_email_endpoint_refuses_a_non_json_body(admin_client):
    response = admin_client.post(
        "/api/v1/user/email/", data="to=x", headers={"X-CSRFToken": api_token(admin_client)}
    )
    assert response.status_code == 400


def test_mail_retries_with_backoff_until_the_smtp_server_is_back(app, admin_client):
    """The SMTP server is down when the task first runs: it retries, and delivers once it is up."""
    from aiosmtpd.controller import Controller
    from conftest import Mailbox
    from local_redis import free_port

    port = free_port()
    queue = "mail-retry-test"  # not "notify": the session worker must not take this mail
    process = start_worker(app, "-c", "1", "-Q", queue, env={"MAIL_PORT": str(port)})
    late_server = None
    try:
        from tasks.user import send_email

        result = send_email.apply_async(
            ("bob@example.com", "稍后送达"), {"context": {"message": "hi"}}, queue=queue
        )
        deadline = time.monotonic() + 30
        while result.state != "RETRY":
            assert time.monotonic() < deadline, "the task never retried"
            time.sleep(0.1)
        inbox = Mailbox()
        late_server = Controller(inbox, hostname="127.0.0.1", port=port)
        late_server.start()
        assert result.get(timeout=120)["sent"] is True
        assert len(inbox.wait_for(1)) == 1
        log = process.log_path.read_text(errors="replace")
        assert "will retry" in log
    finally:
        stop_worker(process)
        if late_server is not None:
            late_server.stop()


# -- SMS ---------------------------------------------------------------------------
def test_sms_endpoint_needs_login(client):
    assert post(client, "/api/v1/user/sms/", {"mobile": "13912345678"}).status_code == 401


@pytest.mark.parametrize(
    "mobile",
    [
        "",
        "1391234567",
        "139123456789",
        "23912345678",
        "12912345678",
        "1391234567x",
        "+8613912345678",
        13912345678,
        None,
        "１３９１２３４５６７８",
    ],
)
def test_sms_validates_the_mobile(buyer_client, mobile):
    response = post(buyer_client, "/api/v1/user/sms/", {"mobile": mobile})
    assert response.status_code == 400
    assert response.get_json()["msg"] == "手机号格式不正确"


def test_sms_stores_a_code_and_queues_the_text(app, buyer_client, redis_client, worker):
    response = post(buyer_client, "/api/v1/user/sms/", {"mobile": "13912345678"})
    assert response.status_code == 200
    body = response.get_json()
    code = redis_client.get("luffy:sms:code:13912345678").decode()
    assert re.fullmatch(r"\d{6}", code)
    assert 0 < redis_client.ttl("luffy:sms:code:13912345678") <= app.config["SMS_CODE_TTL"]
    deadline = time.monotonic() + 30
    while True:
        status = buyer_client.get(f"/api/v1/tasks/{body['task_id']}/").get_json()
        if status["state"] == "SUCCESS":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["result"] == {"mobile": "139****5678", "sent": True}
    with app.app_context():
        from luffy.notify.services import check_sms_code

        assert not check_sms_code("13912345678", "000000" if code != "000000" else "111111")
        assert check_sms_code("13912345678", code)
        assert not check_sms_code("13912345678", code)  # used once


def test_sms_rate_limit_per_mobile(buyer_client):
    assert post(buyer_client, "/api/v1/user/sms/", {"mobile": "13700000001"}).status_code == 200
    again = post(buyer_client, "/api/v1/user/sms/", {"mobile": "13700000001"})
    assert again.status_code == 429
    assert again.get_json()["code"] == 129
    assert post(buyer_client, "/api/v1/user/sms/", {"mobile": "13700000002"}).status_code == 200


def test_sms_rate_limit_per_client_address(app, buyer_client, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_ADDRESS_LIMIT", 3)
    token = api_token(buyer_client)
    answers = [
        post(buyer_client, "/api/v1/user/sms/", {"mobile": f"1360000000{i}"}, token).status_code
        for i in range(5)
    ]
    assert answers == [200, 200, 200, 429, 429]
    other = app.test_client()
    from conftest import login

    login(other, "root", "root-password")
    response = other.post(
        "/api/v1/user/sms/",
        json={"mobile": "13600000009"},
        headers={"X-CSRFToken": api_token(other)},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert response.status_code == 200  # another address has its own allowance


class SmsGateway(BaseHTTPRequestHandler):
    """A stand-in SMS provider on loopback: records each JSON POST, answers 200 (or 503)."""

    received = []
    status = 200

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        SmsGateway.received.append(
            (self.headers.get("Authorization"), json.loads(self.rfile.read(length)))
        )
        self.send_response(SmsGateway.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sms_gateway():
    server = HTTPServer(("127.0.0.1", 0), SmsGateway)
    SmsGateway.received, SmsGateway.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_sms_backend_posts_to_the_provider(app, sms_gateway, monkeypatch):
    from luffy.sms import HttpSmsBackend, SmsError, get_sms_backend

    monkeypatch.setitem(app.config, "SMS_BACKEND", "http")
    monkeypatch.setitem(
        app.config, "SMS_HTTP_URL", f"http://127.0.0.1:{sms_gateway.server_port}/send"
    )
    monkeypatch.setitem(app.config, "SMS_HTTP_TOKEN", "secret-token")
    monkeypatch.delitem(app.extensions, "luffy_sms", raising=False)
    try:
        with app.app_context():
            backend = get_sms_backend()
            assert isinstance(backend, HttpSmsBackend)
            backend.send("13912345678", "验证码 123456")
            assert SmsGateway.received == [
                ("Bearer secret-token", {"mobile": "13912345678", "text": "验证码 123456"})
            ]
            SmsGateway.status = 503
            with pytest.raises(SmsError):
                backend.send("13912345678", "again")
    finally:
        app.extensions.pop("luffy_sms", None)


def test_http_sms_backend_unreachable_raises_sms_error(app, monkeypatch):
    from luffy.sms import HttpSmsBackend, SmsError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setitem(app.config, "SMS_HTTP_URL", f"http://127.0.0.1:{port}/send")
    with pytest.raises(SmsError):
        HttpSmsBackend(app).send("13912345678", "x")
