"""Shared fixtures: a private Redis server, a fresh database, the app, clients, a real worker.

Every test session starts its own ``redis-server`` on a free port (cache on db 0, broker on
db 1) and its own database (a SQLite file, or a fresh PostgreSQL database when
``LUFFY_TEST_DATABASE_URL`` names a server), so sessions never disturb each other or a
developer's data. Nothing here is mocked: the tests talk to real servers over sockets.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from local_redis import free_port, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
RUNTIME = {}


def _create_postgres_database(server_url):
    """A fresh database on the server named by ``server_url``; returns its URL."""
    from config import sqlalchemy_url

    url = make_url(sqlalchemy_url(server_url))
    name = f"luffy_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    RUNTIME["drop_database"] = (url, name)
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database():
    if "drop_database" not in RUNTIME:
        return
    url, name = RUNTIME.pop("drop_database")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _isolated_broker_url(broker_url):
    """For an amqp:// URL, a fresh vhost of its own (when rabbitmqctl is here); else the URL."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(broker_url)
    if not parts.scheme.startswith(("amqp", "pyamqp")) or not shutil.which("rabbitmqctl"):
        return broker_url
    vhost = f"luffy_test_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    RUNTIME["rabbitmq_vhost"] = vhost
    _rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def _delete_rabbitmq_vhost():
    vhost = RUNTIME.pop("rabbitmq_vhost", None)
    if vhost:
        _rabbitmqctl("delete_vhost", vhost)


def pytest_configure(config):
    tmp = Path(tempfile.mkdtemp(prefix="luffy-test-"))
    RUNTIME["tmp"] = tmp
    port = free_port()
    RUNTIME["redis_process"] = start_redis(port, tmp / "redis")
    RUNTIME["redis_port"] = port
    server_db = os.environ.get("LUFFY_TEST_DATABASE_URL", "")
    if server_db.startswith(("postgres://", "postgresql")):
        database_url = _create_postgres_database(server_db)
    else:
        database_url = f"sqlite:///{tmp / 'luffy-test.db'}"
    os.environ.update(
        {
            "LUFFY_ENV": "testing",
            "SECRET_KEY": "test-secret-key",
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "CELERY_BROKER_URL": _isolated_broker_url(os.environ.get("LUFFY_TEST_BROKER_URL", ""))
            or f"redis://127.0.0.1:{port}/1",
            "UPLOAD_DIR": str(tmp / "uploads"),
            "JOBS_EXPORT_DIR": str(tmp / "exports"),
            # Test workers keep their revoked ids (worker --statedb) in the session's folder.
            "WORKER_STATE_DB": str(tmp / "worker-%n.state"),
            "BANNER_REFRESH_SECONDS": "60",
            # Mail goes to the aiosmtpd server of the `smtp_server` fixture (when started).
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(free_port()),
            "MAIL_TIMEOUT": "3",
            "ALERT_EMAILS": "ops@luffy.test",
            # Task modules only the test workers load (tests/tasks_for_tests.py).
            "CELERY_EXTRA_IMPORTS": "tests.tasks_for_tests",
            # enqueue() may run the test tasks (tests.*) besides the tasks package.
            "JOBS_PACKAGES": "tasks,tests",
        }
    )
    os.environ.pop("CELERY_RESULT_BACKEND", None)


def pytest_unconfigure(config):
    process = RUNTIME.get("redis_process")
    if process is not None:
        process.terminate()
        process.wait(timeout=10)
    try:
        _drop_postgres_database()
        _delete_rabbitmq_vhost()
    finally:
        shutil.rmtree(RUNTIME.get("tmp", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def app():
    from flask_migrate import upgrade

    from config import TestingConfig
    from luffy import create_app

    app = create_app(TestingConfig)
    with app.app_context():
        upgrade()  # the real migrations, from empty to head
    RUNTIME["app"] = app
    return app


@pytest.fixture(scope="session")
def redis_port():
    return RUNTIME["redis_port"]


@pytest.fixture
def redis_client(app):
    """The cache/stock Redis (db 0) of the test session."""
    return redis.Redis.from_url(app.config["REDIS_URL"])


@pytest.fixture(autouse=True)
def clean_state(request):
    """Each test starts with empty tables, no luffy: keys and no in-process banner copy, and
    with the session app's Celery app current (a test that built another app took it over)."""
    yield
    if "app" in RUNTIME:
        restore_celery(RUNTIME["app"])
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from luffy.extensions import db

    with app.app_context():
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            if table.name != "alembic_version":
                db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()
        app.extensions["luffy_banner_cache"].forget_local_copy()
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    keys = list(client.scan_iter("luffy:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def make_user(username, password, is_admin=False, **fields):
    from luffy.extensions import db
    from luffy.models import User

    user = User(username=username, is_admin=is_admin, **fields)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user.id


@pytest.fixture
def users(app):
    """An admin and a buyer: ids by name."""
    with app.app_context():
        return {
            "admin": make_user("root", "root-password", is_admin=True, email="root@example.com"),
            "buyer": make_user("buyer", "buyer-password", mobile="13900000000"),
        }


CSRF_INPUT = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)


def csrf_token_from(html):
    match = CSRF_INPUT.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1) or match.group(2)


def login(client, username, password):
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@pytest.fixture
def admin_client(app, users):
    return login(app.test_client(), "root", "root-password")


@pytest.fixture
def buyer_client(app, users):
    return login(app.test_client(), "buyer", "buyer-password")


def in_ci():
    """True on a CI runner (CI=true): a missing service fails the run instead of a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail_in_ci(reason, module_level=False):
    """Skip, saying why; under CI=true fail instead, so CI never goes green on a skip."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def rabbitmq_url():
    """A RabbitMQ to test against: the session's broker when it is AMQP (make test-prod, a vhost
    of its own), else LUFFY_TEST_RABBITMQ_URL (default guest@127.0.0.1:5672), when it answers."""
    from urllib.parse import urlsplit

    session_broker = os.environ.get("CELERY_BROKER_URL", "")
    if session_broker.startswith(("amqp://", "pyamqp://")):
        return session_broker
    url = os.environ.get("LUFFY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 5672)
    try:
        socket.create_connection(address, timeout=0.5).close()
    except OSError:
        skip_or_fail_in_ci(f"no RabbitMQ answers at {address[0]}:{address[1]} ({url})")
    return url


def restore_celery(app):
    """Make ``app``'s Celery app current and default again: building another app takes over
    both, and ``shared_task`` proxies (``update_banner.delay()``) follow the current one."""
    celery_app = app.extensions["celery"]
    celery_app.set_current()
    celery_app.set_default()


def start_worker(app, *extra_args, name=None, env=None):
    """A real ``celery -A tasks worker`` subprocess, returned once it answers a ping."""
    name = name or f"test-{uuid.uuid4().hex[:6]}@%h"
    argv = [
        str(BIN / "celery"),
        "-A",
        "tasks",
        "worker",
        "-l",
        "INFO",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        *extra_args,
    ]
    log_path = RUNTIME["tmp"] / f"worker-{uuid.uuid4().hex[:6]}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 (the process writes to it until it stops)
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log_path = log_path
    celery_app = app.extensions["celery"]
    hostname = name.replace("%h", os.uname().nodename)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text(errors='replace')}")
        replies = celery_app.control.ping(destination=[hostname], timeout=0.5)
        if replies:
            process.hostname = hostname
            return process
    stop_worker(process)
    raise RuntimeError(f"worker did not answer:\n{log_path.read_text(errors='replace')}")


def stop_worker(process, sig=signal.SIGTERM):
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def worker(app):
    """One real worker for the session (prefork, 2 processes)."""
    process = start_worker(app, "-c", "2")
    yield process
    stop_worker(process)


class Mailbox:
    """What the loopback SMTP server received, as parsed ``email.message.Message`` objects."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message.envelope_to = list(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def wait_for(self, count, timeout=30):
        """The messages once at least ``count`` arrived (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} mails arrived"
        return list(self.messages)


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server (aiosmtpd) on loopback at MAIL_PORT for the whole session."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=int(os.environ["MAIL_PORT"]))
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server):
    """The SMTP server's inbox, emptied for this test."""
    smtp_server.messages.clear()
    yield smtp_server
    smtp_server.messages.clear()
