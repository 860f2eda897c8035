"""The web side's defences: the client address behind the proxy, security headers, uploads,
/healthz for strangers, and bad input answered with a 400 (never a 500)."""

import io
import json
import re
from pathlib import Path

import pytest
import requests
from conftest import ROOT, csrf_token_from
from live_servers import environment, start_gunicorn
from local_redis import free_port

META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def api_token(client):
    return META_TOKEN.search(client.get("/").get_data(as_text=True)).group(1)


def post_json(client, url, body, headers=None, **kwargs):
    headers = {
        "X-CSRFToken": api_token(client),
        "Content-Type": "application/json",
        **(headers or {}),
    }
    return client.post(url, data=body, headers=headers, **kwargs)


# -- the client's address behind the reverse proxy (luffy/proxy.py) -----------------------
def sms_from(client, mobile, peer, forwarded_for):
    return post_json(
        client,
        "/api/v1/user/sms/",
        json.dumps({"mobile": mobile}),
        environ_base={"REMOTE_ADDR": peer},
        headers={"X-Forwarded-For": forwarded_for},
    )


def test_two_clients_behind_the_proxy_get_separate_sms_budgets(app, buyer_client, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_ADDRESS_LIMIT", 2)
    proxy = app.config["FORWARDED_ALLOW_IPS"][0]
    first = [sms_from(buyer_client, f"1370000000{i}", proxy, "203.0.113.1") for i in range(3)]
    assert [r.status_code for r in first] == [200, 200, 429]
    second = sms_from(buyer_client, "13700000009", proxy, "203.0.113.2")
    assert second.status_code == 200  # another client behind the same proxy


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(app, buyer_client, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_ADDRESS_LIMIT", 2)
    answers = [
        sms_from(buyer_client, f"1350000000{i}", "198.51.100.7", f"203.0.113.{i}").status_code
        for i in range(3)
    ]
    assert answers == [200, 200, 429]  # one budget: the peer's, whatever the header says


def test_the_address_a_request_sees(app):
    from werkzeug.test import Client

    from luffy.proxy import TrustedProxyFix, parse_networks

    def remote_addr(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["REMOTE_ADDR"].encode()]

    client = Client(TrustedProxyFix(remote_addr, parse_networks(["127.0.0.1"]), hops=1))
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
    # One hop: the address the proxy itself saw (the right-most), not what the client wrote.
    trusted = client.get("/", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert trusted.text == "203.0.113.5"
    untrusted = client.get("/", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert untrusted.text == "192.0.2.50"
    assert isinstance(app.wsgi_app, TrustedProxyFix)  # the outermost layer of the app


@pytest.mark.parametrize(
    "setting, peer, trusted",
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "10.0.0.1", False),
        (["10.0.0.0/8", "::1"], "10.1.2.3", True),
        (["10.0.0.0/8", "::1"], "::1", True),
        (["*"], "192.0.2.1", True),
        (["127.0.0.1"], "", False),
    ],
)
def test_forwarded_allow_ips_as_gunicorn_reads_it(setting, peer, trusted):
    from luffy.proxy import TrustedProxyFix, parse_networks

    assert TrustedProxyFix(None, parse_networks(setting), 1).is_trusted(peer) is trusted


def test_a_bad_forwarded_allow_ips_entry_stops_the_app():
    from luffy.proxy import parse_networks

    with pytest.raises(RuntimeError, match="FORWARDED_ALLOW_IPS"):
        parse_networks(["proxy.internal"])


@pytest.fixture(scope="module")
def proxied_server(app, tmp_path_factory):
    """gunicorn trusting X-Forwarded-For only from 127.0.0.1 (where the tests connect from)."""
    logs = tmp_path_factory.mktemp("proxy")
    env = environment(FORWARDED_ALLOW_IPS="127.0.0.1", LOGIN_ADDRESS_LIMIT=2, LOGIN_USER_LIMIT=100)
    server = start_gunicorn(free_port(), logs, env, workers=1, threads=2)
    yield server
    server.stop()


def failed_login(server, forwarded_for, username):
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=10)
    token = csrf_token_from(page.text)
    return session.post(
        server.url + "/login",
        data={"username": username, "password": "wrong", "csrf_token": token},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    ).status_code


def test_gunicorn_behind_the_proxy_throttles_each_client_apart(proxied_server):
    client_a = [failed_login(proxied_server, "203.0.113.10", f"a{i}") for i in range(3)]
    assert client_a == [400, 400, 429]
    assert failed_login(proxied_server, "203.0.113.11", "b0") == 400


# -- security headers (luffy/headers.py) ---------------------------------------------------
SITE_PATHS = ["/", "/login", "/api/v1/home/banners/", "/static/css/site.css", "/nope", "/healthz"]


@pytest.mark.parametrize("path", SITE_PATHS)
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "Strict-Transport-Security" not in response.headers  # HTTPS only: production


def test_the_buy_gate_answers_carry_them_too(client):
    response = client.post("/api/v1/user/seckill/seckill/", json={"course_id": 1})
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers


def test_the_admin_gets_a_policy_that_allows_flask_admins_inline_scripts(admin_client):
    response = admin_client.get("/admin/banner/")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"


def test_production_adds_hsts():
    from luffy.headers import SecurityHeaders

    def answer(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    seen = {}
    app = SecurityHeaders(answer, hsts_seconds=31536000)
    app({"PATH_INFO": "/"}, lambda status, headers, exc_info=None: seen.update(headers))
    assert seen["Strict-Transport-Security"] == "max-age=31536000"


TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_have_no_inline_script(template):
    """The site's policy has no 'unsafe-inline': scripts live in static/js/."""
    text = Path(template).read_text()
    assert not INLINE_SCRIPT.search(text)
    assert not EVENT_HANDLER.search(text)
    assert not JS_URL.search(text)


# -- uploads (luffy/uploads.py) ------------------------------------------------------------
def admin_form_token(client, url):
    return csrf_token_from(client.get(url).get_data(as_text=True))


def upload_banner(client, payload, filename="banner.gif", **fields):
    token = admin_form_token(client, "/admin/banner/new/")
    data = {"title": "t", "link": "/", "orders": "1", "csrf_token": token, **fields}
    if payload is not None:
        data["image_upload"] = (io.BytesIO(payload), filename)
    return client.post("/admin/banner/new/", data=data, content_type="multipart/form-data")


def banner_count(app):
    from luffy.extensions import db
    from luffy.models import Banner

    with app.app_context():
        return db.session.scalar(db.select(db.func.count(Banner.id)))


def image_bytes(kind, size=(6, 6)):
    from PIL import Image

    output = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(output, kind)
    return output.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        b"GIF89a<html><script>alert(document.cookie)</script></html>",
        b"GIF89a" + b"\x01\x00\x01\x00" + b"<html>" * 20,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        b"",
    ],
    ids=["gif89a-html", "gif-header-html", "png-signature-only", "svg", "empty"],
)
def test_a_file_that_is_not_a_decodable_image_is_refused(app, admin_client, payload):
    response = upload_banner(admin_client, payload)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "不是有效的图片" in page or "文件是空的" in page or "请上传图片" in page
    assert banner_count(app) == 0


@pytest.mark.parametrize("kind, extension", [("GIF", "gif"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_a_real_image_is_stored_re_encoded(app, admin_client, client, kind, extension):
    from PIL import Image

    original = image_bytes(kind) + b"<script>alert(1)</script>"  # trailing junk is not kept
    response = upload_banner(admin_client, original, filename="x.png", is_show="y")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    image = client.get("/api/v1/home/banners/").get_json()["results"][0]["image"]
    assert image.endswith("." + extension)
    served = client.get(image)
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in served.data
    assert Image.open(io.BytesIO(served.data)).format == kind


@pytest.mark.parametrize(
    "value, accepted",
    [
        ("/static/img/banners/go.svg", True),
        ("/uploads/banners/abc.png", True),
        ("/media/banners/abc.png", True),
        ("https://cdn.example.com/a.png", True),
        ("http://cdn.example.com/a.png", False),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("//evil.example.com/a.png", False),
        ("/static/../config.py", False),
        ("/login", False),
        ("https://user:pw@evil.example.com/a.png", False),
        ("/static/a.png\n", False),
        ("anything at all", False),
    ],
)
def test_the_banner_image_field_takes_a_same_site_path_or_an_https_url(
    app, admin_client, value, accepted
):
    response = upload_banner(admin_client, None, image=value)
    assert (response.status_code == 302) is accepted, response.get_data(as_text=True)[-800:]
    assert banner_count(app) == (1 if accepted else 0)


# -- /healthz ------------------------------------------------------------------------------
def test_healthz_tells_strangers_only_ok_or_not(app, client, monkeypatch):
    import redis

    stopped = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5)
    monkeypatch.setitem(app.extensions, "luffy_redis", stopped)
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["services"]["redis"] == {"ok": False}  # no "Error 111 connecting to ..."
    assert body["services"]["database"] == {"ok": True}
    assert str(stopped.connection_pool.connection_kwargs["port"]) not in response.text


def test_healthz_gives_details_to_the_metrics_token(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "health-token-for-tests")
    plain = client.get("/healthz").get_json()["services"]["database"]
    assert plain == {"ok": True}
    detailed = client.get(
        "/healthz", headers={"Authorization": "Bearer health-token-for-tests"}
    ).get_json()["services"]["database"]
    assert detailed["ok"] is True and "ms" in detailed
    wrong = client.get("/healthz", headers={"Authorization": "Bearer nope"}).get_json()
    assert wrong["services"]["database"] == {"ok": True}


# -- bad input: 400, never a 500 -----------------------------------------------------------
JSON_POST_ROUTES = [
    "/api/v1/user/seckill/seckill/",
    "/api/v1/user/sms/",
    "/api/v1/user/email/",
]


@pytest.mark.parametrize("url", JSON_POST_ROUTES)
def test_deeply_nested_json_is_a_400(admin_client, url):
    response = post_json(admin_client, url, "[" * 100_000)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["code"] == 101


@pytest.mark.parametrize(
    "url",
    ["/admin/monitor/workers/pool", "/admin/monitor/rate-limit"],
)
def test_deeply_nested_json_on_monitor_actions_is_a_400(admin_client, url):
    response = post_json(admin_client, url, "[" * 100_000)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]


ADMIN_LISTS = ["/admin/banner/", "/admin/course/", "/admin/user/", "/admin/taskresult/"]


@pytest.mark.parametrize("url", ADMIN_LISTS)
def test_an_admin_page_number_too_big_for_the_database_is_a_400(admin_client, url):
    response = admin_client.get(url + "?page=99999999999999999999")
    assert response.status_code == 400
    assert "数值超出范围" in response.get_data(as_text=True)


def test_a_30_digit_filter_value_is_not_a_500(app, admin_client):
    checked = 0
    for view in app.extensions["luffy_admin"]._views:
        for index, flt in enumerate(getattr(view, "_filters", None) or []):
            arg = view.get_filter_arg(index, flt)
            url = f"{view.url}/?flt0_{arg}=123456789012345678901234567890"
            assert admin_client.get(url).status_code in (200, 400), url
            checked += 1
    assert checked > 10


@pytest.mark.parametrize(
    "eta, message",
    [
        ("1900-01-01T00:00:00", "已经过去"),
        ("2000-06-01T08:00:00+08:00", "已经过去"),
        ("9999-12-31T23:59:59", "7 天"),
    ],
)
def test_an_email_eta_far_in_the_past_or_future_is_refused(admin_client, eta, message):
    body = {"to": "a@example.com", "subject": "s", "message": "m", "eta": eta}
    response = post_json(admin_client, "/api/v1/user/email/", json.dumps(body))
    assert response.status_code == 400
    assert message in response.get_json()["msg"]


def test_an_email_eta_a_moment_ago_is_sent_now(admin_client):
    from datetime import UTC, datetime, timedelta

    eta = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    body = {"to": "a@example.com", "subject": "s", "message": "m", "eta": eta}
    response = post_json(admin_client, "/api/v1/user/email/", json.dumps(body))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("mobile", ["13912345678\n", "13912345678\r\n", "\n13912345678"])
def test_a_mobile_with_a_newline_is_refused(buyer_client, redis_client, mobile):
    response = post_json(buyer_client, "/api/v1/user/sms/", json.dumps({"mobile": mobile}))
    assert response.status_code == 400
    assert response.get_json()["msg"] == "手机号格式不正确"
    assert not list(redis_client.scan_iter("luffy:sms:*"))


def within_one_second(make_requests, attempts=5):
    """Statuses of ``make_requests()`` run inside one wall-clock second (the buy limits'
    window), starting just after a second begins; tried again if it spilled over."""
    import time

    for _ in range(attempts):
        time.sleep(1 - time.time() % 1 + 0.01)
        second = int(time.time())
        statuses = make_requests()
        if int(time.time()) == second:
            return statuses
    pytest.fail("the requests never fitted in one second")


def test_two_clients_behind_the_proxy_get_separate_buy_budgets(app, monkeypatch):
    from seckill_helpers import BUY, add_buyers, add_sale, logged_in_client

    course_id, _ = add_sale(app, 3, starts_in=3600, ends_in=7200)  # refusals, nothing bought
    monkeypatch.setitem(app.config, "SECKILL_ADDRESS_RATE", 2)
    clients = [logged_in_client(app, u) for u in add_buyers(app, 4, prefix="proxied")]
    proxy = {"REMOTE_ADDR": app.config["FORWARDED_ALLOW_IPS"][0]}

    def buy_from(client, forwarded_for):
        headers = {"X-CSRFToken": client.csrf, "X-Forwarded-For": forwarded_for}
        body = {"course_id": course_id}
        return client.post(BUY, json=body, headers=headers, environ_base=proxy).status_code

    statuses = within_one_second(
        lambda: (
            [buy_from(c, "203.0.113.20") for c in clients[:3]]
            + [buy_from(clients[3], "203.0.113.21")]
        )
    )
    assert statuses == [409, 409, 429, 409]  # the third from one client is over its budget
