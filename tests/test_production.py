"""LUFFY_ENV=production: refuses a missing SECRET_KEY, secure cookies, JSON logs, no debug pages.

Run through the real entry points (gunicorn, celery) in subprocesses: production logging
rewires the root logger, which must not leak into the test process.
"""

import json
import subprocess
import sys

import pytest
import requests
from conftest import ROOT
from live_servers import BIN, LiveProcess, environment, start_gunicorn, wait_until
from local_redis import free_port

PRODUCTION = {"LUFFY_ENV": "production", "SECRET_KEY": "a-long-production-secret-for-tests"}


def json_lines(text):
    """Every non-empty line parsed as JSON (fails, naming the line, when one is not)."""
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"log line is not JSON: {line!r}")
    return records


@pytest.mark.parametrize("secret", [None, "", "dev-only-secret-key-change-me"])
def test_app_refuses_to_start_without_a_secret_key(secret):
    env = environment(**{**PRODUCTION, "SECRET_KEY": secret})
    result = subprocess.run(
        [sys.executable, "-c", "from luffy import create_app; create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs SECRET_KEY" in result.stderr


def test_gunicorn_refuses_to_start_without_a_secret_key():
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environment(
            LUFFY_ENV="production", SECRET_KEY=None, WEB_BIND=f"127.0.0.1:{free_port()}"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs SECRET_KEY" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "setting, recycled_after, jitter", [(None, 100_000, 50_000), ("0", 0, 0), ("5000", 5000, 2500)]
)
def test_gunicorn_recycles_workers_rarely_and_apart(setting, recycled_after, jitter):
    # A flash sale serves thousands of requests a second: a low max_requests would restart
    # every worker every few seconds; the jitter keeps two workers' restarts apart.
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--print-config", "wsgi:app"],
        cwd=ROOT,
        env=environment(WEB_MAX_REQUESTS=setting),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in result.stdout.splitlines())
    }
    assert int(printed["max_requests"]) == recycled_after
    assert int(printed["max_requests_jitter"]) == jitter


@pytest.fixture(scope="module")
def broken_production_server(app, tmp_path_factory):
    """gunicorn in production whose database file cannot be opened and whose Redis is down."""
    logs = tmp_path_factory.mktemp("production")
    env = environment(
        **PRODUCTION,
        DATABASE_URL=f"sqlite:///{logs / 'missing-dir' / 'luffy.db'}",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    server = start_gunicorn(free_port(), logs, env)
    yield server
    server.stop()


def test_session_cookie_is_secure_httponly_and_samesite(broken_production_server):
    response = requests.get(broken_production_server.url + "/login", timeout=10)
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_answers_carry_hsts_and_the_other_security_headers(broken_production_server):
    response = requests.get(broken_production_server.url + "/login", timeout=10)
    assert response.headers["Strict-Transport-Security"] == f"max-age={365 * 86400}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_a_database_outage_shows_no_debug_page_and_is_logged_as_json(broken_production_server):
    # The server's database cannot be opened: a dependency down is a 503 without details.
    server = broken_production_server
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 503
    assert "服务暂时不可用" in page.text
    for leak in ("Traceback", "OperationalError", "sqlite", "Werkzeug Debugger", "missing-dir"):
        assert leak not in page.text

    api = requests.get(server.url + "/api/v1/home/banners/", timeout=10)
    assert api.status_code == 503
    assert api.json()["msg"] == "服务暂时不可用，请稍后再试" and "Traceback" not in api.text

    def error_record():
        records = json_lines(server.output())
        return [r for r in records if r["level"] == "ERROR" and r.get("path") == "/"]

    record = wait_until(error_record, timeout=10, message="the error's log line")[0]
    assert record["logger"] == "luffy.errors" and record["method"] == "GET"
    assert "OperationalError" in record["exc"]  # the traceback is in the log, on one line


def test_every_gunicorn_and_app_log_line_is_json(broken_production_server):
    server = broken_production_server
    requests.get(server.url + "/login?next=%2F", timeout=10)

    def access_record():
        return [
            r
            for r in json_lines(server.output())
            if r["logger"] == "gunicorn.access" and r.get("query") == "next=%2F"
        ]

    record = wait_until(access_record, timeout=10, message="the access log line")[0]
    assert record["status"] == 200 and record["method"] == "GET" and record["path"] == "/login"
    assert isinstance(record["duration_ms"], int)
    records = json_lines(server.output())
    assert {"gunicorn.error", "gunicorn.access"} <= {r["logger"] for r in records}
    assert all({"ts", "level", "logger", "msg", "pid"} <= set(r) for r in records)


def test_worker_and_beat_log_json_lines(app, tmp_path):
    """Run as the deployment runs them (``--quiet``: no start-up banner on stdout)."""
    env = environment(**PRODUCTION)
    worker = LiveProcess(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "--quiet",
            "worker",
            "-l",
            "INFO",
            "-c",
            "1",
            "-n",
            f"json-{free_port()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        tmp_path / "worker.log",
        env,
    )
    beat = LiveProcess(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "--quiet",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(tmp_path / "beat-schedule"),
        ],
        tmp_path / "beat.log",
        env,
    )
    try:
        wait_until(lambda: " ready." in worker.output(), timeout=60, message="the worker")
        wait_until(
            lambda: "beat: Starting" in beat.output() or not beat.running(),
            timeout=60,
            message="beat",
        )
    finally:
        worker.stop()
        beat.stop()
    # Celery prints its shutdown notice straight to stdout, bypassing logging.
    worker_lines = "\n".join(
        line
        for line in worker.output().splitlines()
        if not line.startswith("worker: Warm shutdown")
    )
    records = json_lines(worker_lines)
    assert any(
        r["msg"].endswith(" ready.") and r["logger"] == "celery.apps.worker" for r in records
    )
    beat_records = json_lines(beat.output())
    assert any(r["msg"].startswith("beat: Starting") for r in beat_records)
