"""The monitoring dashboard: workers, queues, task history, controls, and bounded answers."""

import re
import socket
import time
import uuid
from datetime import UTC

import pytest
import redis
from conftest import (
    csrf_token_from,
    login,
    rabbitmq_url,
    restore_celery,
    start_worker,
    stop_worker,
)

DATA = "/admin/monitor/data"
ANSWER_WITHIN_SECONDS = 2.0


def first_answer(client):
    """One dashboard answer, as it comes (workers and queues may say "loading")."""
    response = client.get(DATA)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["code"] == 100
    return body["sections"]


def loading(sections):
    return sections["workers"].get("loading") or sections["queues"].get("loading")


def dashboard_data(client, timeout=30):
    """The dashboard's answer once workers and queues are no longer loading (asking again,
    as the page does, while a process's first inspect is on its way)."""
    deadline = time.monotonic() + timeout
    sections = first_answer(client)
    while loading(sections) and time.monotonic() < deadline:
        time.sleep(0.3)
        sections = first_answer(client)
    assert not loading(sections), sections
    return sections


def post_json(client, url, body):
    token = csrf_token_from(client.get("/admin/monitor/").get_data(as_text=True))
    return client.post(url, json=body, headers={"X-CSRFToken": token, "Accept": "application/json"})


def worker_entry(sections, hostname):
    assert sections["workers"]["ok"], sections["workers"]
    return next((w for w in sections["workers"]["data"] if w["hostname"] == hostname), None)


def wait_for(predicate, timeout=20, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture
def other_app(app, monkeypatch):
    """Build a second app with other settings; the session app's Celery stays the default."""
    from config import TestingConfig
    from luffy import create_app

    def build(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return create_app(TestingConfig)

    yield build
    restore_celery(app)


SMALL_WORKER_QUEUE = f"luffy-test-small-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def small_worker(app):
    """A worker with one process and a queue of its own, for pool and termination tests."""
    process = start_worker(app, "-c", "1", "-Q", SMALL_WORKER_QUEUE)
    yield process
    stop_worker(process)


PAGES = ["/admin/monitor/", DATA, "/admin/monitor/tasks/abc"]
ACTIONS = [
    "/admin/monitor/workers/pool",
    "/admin/monitor/rate-limit",
    "/admin/monitor/tasks/abc/revoke",
]


def page_token(client):
    """A CSRF token of the client's session, from the home page's meta tag."""
    html = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.mark.parametrize("url", PAGES)
def test_dashboard_pages_send_anonymous_users_to_the_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", PAGES)
def test_dashboard_pages_refuse_a_buyer(buyer_client, url):
    assert buyer_client.get(url).status_code == 403


@pytest.mark.parametrize("url", ACTIONS)
def test_dashboard_actions_refuse_anyone_but_an_admin(client, buyer_client, url):
    anonymous = client.post(url, json={}, headers={"X-CSRFToken": page_token(client)})
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    buyer = buyer_client.post(url, json={}, headers={"X-CSRFToken": page_token(buyer_client)})
    assert buyer.status_code == 403


@pytest.mark.parametrize("url", ACTIONS)
def test_dashboard_actions_refuse_a_post_without_csrf_token(admin_client, url):
    assert admin_client.post(url, json={}).status_code == 400


def test_page_is_in_the_admin_and_loads_no_cdn(admin_client):
    page = admin_client.get("/admin/monitor/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "js/dashboard.js" in html and DATA in html
    assert "任务监控" in admin_client.get("/admin/").get_data(as_text=True)
    assert "cdn" not in html.lower()


def test_first_answer_says_loading_until_the_workers_answered(other_app, users, worker):
    """A process's first inspect can outlast the dashboard's deadline (here: a 3 s inspect
    timeout against a 1.6 s deadline): the answer says "loading", never "unavailable", and
    the next answers list the worker."""
    from luffy.dashboard.live import LOADING

    slow = other_app(MONITOR_INSPECT_TIMEOUT="3")
    admin = login(slow.test_client(), "root", "root-password")
    started = time.monotonic()
    first = first_answer(admin)
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS
    assert first["workers"] == {"ok": False, "loading": True, "error": LOADING}
    assert first["queues"] == {"ok": False, "loading": True, "error": LOADING}
    assert first["tasks"]["ok"] is True
    settled = dashboard_data(admin)
    assert worker_entry(settled, worker.hostname)["online"] is True
    assert settled["queues"]["ok"] is True


def test_dashboard_lists_the_worker(admin_client, worker):
    sections = dashboard_data(admin_client)
    entry = worker_entry(sections, worker.hostname)
    assert entry is not None, sections["workers"]
    assert entry["online"] is True
    assert entry["concurrency"] == 2
    assert isinstance(entry["processed"], int)


def test_queued_task_shows_in_queue_length(other_app, users, redis_port):
    """A broker nobody consumes from (Redis db 2): the queued message is counted."""
    broker = f"redis://127.0.0.1:{redis_port}/2"
    lonely = other_app(CELERY_BROKER_URL=broker)
    admin = login(lonely.test_client(), "root", "root-password")
    before = dashboard_data(admin)["queues"]
    assert before["ok"], before
    assert before["data"]["periodic"]["messages"] == 0

    lonely.extensions["celery"].send_task("tasks.home.update_banner", queue="periodic")
    lonely.extensions["celery"].send_task("tasks.home.update_banner", queue="periodic")
    after = dashboard_data(admin)["queues"]["data"]
    assert after["periodic"]["messages"] == 2
    assert after["default"]["messages"] == 0
    redis.Redis.from_url(broker).delete("periodic")


def test_queue_length_on_rabbitmq(other_app):
    """The same passive-declare count works on an AMQP broker (a queue of the test's own)."""
    from kombu import Connection, Exchange, Queue

    from luffy.dashboard import live

    url = rabbitmq_url()
    rabbit = other_app(CELERY_BROKER_URL=url)
    name = f"luffy-test-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), routing_key=name, auto_delete=False)
    with Connection(url) as connection:
        producer = connection.Producer()
        for i in range(3):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])
        try:
            with rabbit.app_context():
                lengths = live.queue_lengths(names=[name, f"{name}-missing"])
            assert lengths[name] == {"messages": 3, "consumers": 0}
            assert lengths[f"{name}-missing"]["messages"] == 0
        finally:
            queue(connection.default_channel).delete()
            queue.exchange(connection.default_channel).delete()


def test_failed_task_shows_under_failures_and_in_the_chart(app, admin_client, worker):
    celery_app = app.extensions["celery"]
    result = celery_app.send_task("tests.fails", args=["dashboard"])
    result.get(timeout=30, propagate=False)
    assert result.state == "FAILURE"

    tasks = dashboard_data(admin_client)["tasks"]
    assert tasks["ok"], tasks
    data = tasks["data"]
    failure = next(f for f in data["failures"] if f["task_id"] == result.id)
    assert failure["name"] == "tests.fails"
    assert "boom dashboard" in failure["error"]
    assert data["counts"]["last_hour"]["FAILURE"] >= 1
    assert data["counts"]["last_day"]["FAILURE"] >= 1
    assert 'data-state="FAILURE" data-window="hour" data-count="1"' in data["state_chart"]
    assert sum(point["count"] for point in data["throughput"]) >= 1
    assert len(data["throughput"]) == 60

    detail = admin_client.get(failure["url"])
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert "Traceback" in html and "RuntimeError: boom dashboard" in html


def test_unknown_task_detail_is_a_404(admin_client):
    assert admin_client.get("/admin/monitor/tasks/no-such-task").status_code == 404


def test_revoke_a_delayed_task(app, admin_client, worker):
    celery_app = app.extensions["celery"]
    result = celery_app.send_task("tasks.home.update_banner", countdown=60)
    assert wait_for(
        lambda: any(
            r["id"] == result.id
            for w in (dashboard_data(admin_client)["workers"]["data"] or [])
            for r in w.get("scheduled") or []
        )
    ), "the worker never listed the delayed task"

    response = post_json(
        admin_client, f"/admin/monitor/tasks/{result.id}/revoke", {"terminate": False}
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert "revoked" in str(body["replies"][worker.hostname])
    assert wait_for(lambda: result.state == "REVOKED", timeout=10)
    revoked = celery_app.control.inspect(destination=[worker.hostname], timeout=1).revoked()
    assert result.id in revoked[worker.hostname]


def test_terminate_a_running_task(app, admin_client, small_worker):
    celery_app = app.extensions["celery"]
    result = celery_app.send_task(
        "tests.effect_once", args=["terminate-me", 60], queue=SMALL_WORKER_QUEUE
    )
    assert wait_for(lambda: result.state == "STARTED", timeout=20)

    response = post_json(
        admin_client, f"/admin/monitor/tasks/{result.id}/revoke", {"terminate": True}
    )
    assert response.status_code == 200, response.get_json()
    assert f"terminate: {result.id}" in str(response.get_json()["replies"][small_worker.hostname])
    assert wait_for(lambda: result.state == "REVOKED", timeout=15)


def test_a_revoke_survives_a_worker_restart(app, admin_client):
    """Workers keep revoked ids in their state file (WORKER_STATE_DB), not only in memory."""
    name = f"statedb-{uuid.uuid4().hex[:6]}@%h"
    idle_queue = ["-Q", f"luffy-test-{uuid.uuid4().hex[:8]}"]  # takes no one else's tasks
    task_id = str(uuid.uuid4())
    process = start_worker(app, "-c", "1", *idle_queue, name=name)
    try:
        response = post_json(admin_client, f"/admin/monitor/tasks/{task_id}/revoke", {})
        assert response.status_code == 200, response.get_json()
        assert process.hostname in response.get_json()["replies"]
    finally:
        stop_worker(process)
    process = start_worker(app, "-c", "1", *idle_queue, name=name)
    try:
        revoked = (
            app.extensions["celery"]
            .control.inspect(destination=[process.hostname], timeout=1)
            .revoked()
        )
        assert task_id in revoked[process.hostname]
    finally:
        stop_worker(process)


def test_a_worker_creates_the_folder_of_its_state_file(app):
    from conftest import RUNTIME

    folder = RUNTIME["tmp"] / f"state-{uuid.uuid4().hex[:6]}" / "nested"
    process = start_worker(
        app,
        "-c",
        "1",
        "-Q",
        f"luffy-test-{uuid.uuid4().hex[:8]}",
        env={"WORKER_STATE_DB": str(folder / "worker-%n.state")},
    )
    stop_worker(process)
    assert [path.name for path in folder.iterdir() if path.name.startswith("worker-test-")]


def pool_size(app, hostname):
    stats = (
        app.extensions["celery"].control.inspect(destination=[hostname], timeout=1).stats() or {}
    )
    return len(stats.get(hostname, {}).get("pool", {}).get("processes") or [])


def test_grow_and_shrink_reach_the_worker(app, admin_client, small_worker):
    hostname = small_worker.hostname
    assert pool_size(app, hostname) == 1
    response = post_json(
        admin_client,
        "/admin/monitor/workers/pool",
        {"hostname": hostname, "action": "grow", "n": 1},
    )
    assert response.status_code == 200, response.get_json()
    assert wait_for(lambda: pool_size(app, hostname) == 2, timeout=15)

    response = post_json(
        admin_client,
        "/admin/monitor/workers/pool",
        {"hostname": hostname, "action": "shrink", "n": 1},
    )
    assert response.status_code == 200, response.get_json()
    assert wait_for(lambda: pool_size(app, hostname) == 1, timeout=15)


def test_rate_limit_reaches_the_worker(app, admin_client, small_worker):
    hostname = small_worker.hostname
    response = post_json(
        admin_client,
        "/admin/monitor/rate-limit",
        {"task_name": "tasks.home.update_banner", "rate": "10/m", "hostname": hostname},
    )
    assert response.status_code == 200, response.get_json()
    registered = (
        app.extensions["celery"]
        .control.inspect(destination=[hostname], timeout=1)
        .registered("rate_limit")
    )
    assert "tasks.home.update_banner [rate_limit=10/m]" in registered[hostname]

    unknown = post_json(
        admin_client,
        "/admin/monitor/rate-limit",
        {"task_name": "tasks.no_such_task", "rate": "1/s", "hostname": hostname},
    )
    assert unknown.status_code == 409
    assert "unknown task" in unknown.get_json()["msg"]
    post_json(
        admin_client,
        "/admin/monitor/rate-limit",
        {"task_name": "tasks.home.update_banner", "rate": "0", "hostname": hostname},
    )


@pytest.mark.parametrize(
    "url, body",
    [
        ("/admin/monitor/workers/pool", {"hostname": "w@h", "action": "explode", "n": 1}),
        ("/admin/monitor/workers/pool", {"hostname": "w@h", "action": "grow", "n": 500}),
        ("/admin/monitor/workers/pool", {"hostname": "w@h", "action": "grow", "n": "x"}),
        ("/admin/monitor/workers/pool", {"hostname": "<script>", "action": "grow", "n": 1}),
        ("/admin/monitor/workers/pool", ["not", "an", "object"]),
        ("/admin/monitor/rate-limit", {"task_name": "tasks.home.update_banner", "rate": "fast"}),
        ("/admin/monitor/rate-limit", {"task_name": "", "rate": "1/s"}),
        ("/admin/monitor/tasks/bad id!/revoke", {}),
    ],
)
def test_controls_refuse_bad_input(admin_client, url, body):
    response = post_json(admin_client, url, body)
    assert response.status_code == 400
    assert response.get_json()["code"] != 100


def test_page_answers_quickly_with_the_worker_stopped(app, admin_client):
    process = start_worker(app, "-c", "1")
    try:
        assert worker_entry(dashboard_data(admin_client), process.hostname)["online"] is True
    finally:
        stop_worker(process)
    started = time.monotonic()
    sections = dashboard_data(admin_client)
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS
    entry = worker_entry(sections, process.hostname)
    assert entry is not None and entry["online"] is False and entry["last_seen"]

    started = time.monotonic()
    response = post_json(
        admin_client,
        "/admin/monitor/workers/pool",
        {"hostname": process.hostname, "action": "grow", "n": 1},
    )
    assert response.status_code == 503
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS + 1.0  # includes fetching the form


@pytest.fixture
def silent_port():
    """A port that accepts connections into its backlog and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    yield silent.getsockname()[1]
    silent.close()


@pytest.mark.parametrize("broker", ["closed", "silent"])
def test_page_answers_quickly_with_the_broker_stopped(other_app, users, broker, silent_port):
    from local_redis import free_port

    port = free_port() if broker == "closed" else silent_port
    broken = other_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/1")
    admin = login(broken.test_client(), "root", "root-password")
    token = csrf_token_from(admin.get("/admin/monitor/").get_data(as_text=True))

    started = time.monotonic()
    sections = first_answer(admin)
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS
    assert sections["workers"]["ok"] is False and sections["queues"]["ok"] is False
    assert sections["tasks"]["ok"] is True  # the results table does not need the broker
    settled = dashboard_data(admin)  # once the broker's silence or refusal is known
    assert "broker unavailable" in settled["workers"]["error"]
    assert "broker unavailable" in settled["queues"]["error"]

    started = time.monotonic()
    response = admin.post(
        "/admin/monitor/tasks/abc/revoke", json={}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 503
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS


def test_beat_section_reads_the_beat_keys(admin_client, redis_client):
    redis_client.set("luffy:beat:lock", "beat-on-host-1")
    redis_client.set("luffy:beat:last_tick", str(time.time()))
    beat = dashboard_data(admin_client)["beat"]
    assert beat["ok"], beat
    assert "beat-on-host-1" in str(beat["data"])


def test_sales_section_is_empty_without_a_running_sale(admin_client):
    assert dashboard_data(admin_client)["sales"] == {"ok": True, "data": []}


def test_charts_escape_what_they_draw():
    from luffy.dashboard import charts

    svg = charts.state_bars({"<script>": 3}, {"<script>": 7})
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'data-window="hour" data-count="3"' in svg and 'data-window="day" data-count="7"' in svg
    assert charts.axis_max(0) == 1 and charts.axis_max(3) == 5 and charts.axis_max(11) == 20


def test_sales_section_shows_a_running_sale(app, admin_client):
    """Stock in Redis and in the database, from the flash sale's own sale_status()."""
    from datetime import datetime, timedelta

    from luffy.extensions import db
    from luffy.models import Course, Sale
    from luffy.seckill import sales as seckill

    now = datetime.now(UTC)
    with app.app_context():
        course = Course(name="监控课", price=99)
        db.session.add(course)
        db.session.flush()
        sale = Sale(
            course_id=course.id,
            price=9,
            total_stock=7,
            remaining_stock=7,
            start_at=now - timedelta(minutes=1),
            end_at=now + timedelta(hours=1),
        )
        db.session.add(sale)
        db.session.commit()
        sale_id = sale.id
        seckill.load_sales()
    sales = dashboard_data(admin_client)["sales"]
    assert sales["ok"], sales
    entry = next(s for s in sales["data"] if s["id"] == sale_id)
    assert entry["status"]["remaining_db"] == 7
    assert entry["status"]["stock_redis"] == 7


def test_page_answers_quickly_with_redis_down(other_app, users, worker, silent_port):
    """Redis only remembers offline workers and holds beat/sale state: the rest still shows."""
    broken = other_app(REDIS_URL=f"redis://127.0.0.1:{silent_port}/0")
    admin = login(broken.test_client(), "root", "root-password")
    started = time.monotonic()
    sections = dashboard_data(admin)
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS
    assert worker_entry(sections, worker.hostname)["online"] is True
    assert sections["queues"]["ok"] and sections["tasks"]["ok"]
