"""``GET /metrics``: the token, the Prometheus text, counters that move and sum across processes."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import BIN, ROOT, RUNTIME, restore_celery

TOKEN = "test-metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A scrape answers from what is known, never waiting for the workers (target: 100 ms; the
# bound here leaves room for a busy shared machine and stays far below any inspect timeout).
SCRAPE_SECONDS = 1.0
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")


def parse(text):
    """{(name, frozenset of label pairs): value} from the Prometheus text format."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(samples, metric, **labels):
    return samples.get((metric, frozenset(labels.items())), 0.0)


def total(samples, metric):
    return sum(v for (name, _), v in samples.items() if name == metric)


@pytest.fixture
def token(app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    return TOKEN


def scrape(client):
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def scrape_live(client, timeout=30):
    """A scrape that includes the live gauges (workers, queues, broker): scrapes again while
    the process's first background inspect is on its way, each scrape answering at once."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        samples = scrape(client)
        assert time.monotonic() - started < SCRAPE_SECONDS
        if value(samples, "luffy_live_state_loaded") == 1:
            return samples
        assert ("luffy_broker_up", frozenset()) not in samples  # nothing made up meanwhile
        assert time.monotonic() < deadline, "the live gauges never appeared"
        time.sleep(0.2)


def test_metrics_refuse_everyone_without_a_configured_token(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 403
        assert response.get_json()["code"] != 100


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": "Bearer \u00e9\u00e9"}, 403),
    ],
)
def test_metrics_refuse_a_missing_or_wrong_token(client, token, headers, status):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    assert "luffy_" not in response.get_data(as_text=True)


def test_task_counters_move_when_tasks_run(app, client, token, worker):
    from tasks.home import update_banner

    before = scrape(client)
    name = "tasks.home.update_banner"
    update_banner.delay().get(timeout=30)
    update_banner.delay().get(timeout=30)
    failed = app.extensions["celery"].send_task("tests.fails", args=["metrics"])
    failed.get(timeout=30, propagate=False)

    def moved():
        after = scrape(client)
        done = value(after, "luffy_tasks_total", name=name, state="SUCCESS") - value(
            before, "luffy_tasks_total", name=name, state="SUCCESS"
        )
        fails = value(after, "luffy_tasks_total", name="tests.fails", state="FAILURE") - value(
            before, "luffy_tasks_total", name="tests.fails", state="FAILURE"
        )
        return after if done == 2 and fails == 1 else None

    deadline = time.monotonic() + 15  # workers flush their counts once a second
    after = moved()
    while after is None and time.monotonic() < deadline:
        time.sleep(0.3)
        after = moved()
    assert after is not None, "task counters did not move"
    assert (
        value(after, "luffy_tasks_total", name=name, state="SENT")
        - value(before, "luffy_tasks_total", name=name, state="SENT")
        == 2
    )
    assert value(after, "luffy_tasks_total", name=name, state="STARTED") >= 2
    live = scrape_live(client)
    assert value(live, "luffy_broker_up") == 1
    assert value(live, "luffy_workers_online") >= 1
    for queue in ("default", "seckill", "notify", "periodic"):
        assert ("luffy_queue_length", frozenset({("queue", queue)})) in live


def test_banner_cache_hits_and_misses_are_counted(app, client, token):
    before = scrape(client)
    app.extensions["luffy_banner_cache"].forget_local_copy()
    for _ in range(5):
        assert client.get("/api/v1/home/banners/").status_code == 200
    after = scrape(client)

    def moved(**labels):
        return value(after, "luffy_banner_cache_total", **labels) - value(
            before, "luffy_banner_cache_total", **labels
        )

    assert moved(result="miss", layer="redis") + moved(result="hit", layer="redis") == 1
    assert moved(result="hit", layer="process") == 4


def test_metrics_answer_quickly_with_the_broker_down(app, monkeypatch):
    from local_redis import free_port

    from config import TestingConfig
    from luffy import create_app

    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/1")
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    try:
        broken = create_app(TestingConfig)
        samples = scrape_live(broken.test_client())
        assert samples[("luffy_broker_up", frozenset())] == 0
        assert samples[("luffy_workers_online", frozenset())] == 0
    finally:
        restore_celery(app)


def test_a_scrape_never_waits_for_the_workers(app, worker, monkeypatch):
    """With a 3 s inspect timeout every scrape still answers at once, from the last snapshot,
    and the snapshot is taken in the background."""
    from config import TestingConfig
    from luffy import create_app

    monkeypatch.setenv("MONITOR_INSPECT_TIMEOUT", "3")
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    try:
        slow = create_app(TestingConfig)
        client = slow.test_client()
        started = time.monotonic()
        first = scrape(client)
        assert time.monotonic() - started < SCRAPE_SECONDS
        assert value(first, "luffy_live_state_loaded") == 0
        live = scrape_live(client)
        assert live[("luffy_broker_up", frozenset())] == 1
        assert live[("luffy_workers_online", frozenset())] >= 1
        assert live[("luffy_live_state_age_seconds", frozenset())] >= 0
    finally:
        restore_celery(app)


def test_counting_costs_no_redis_round_trip(app, redis_client):
    """count() only touches memory; the total reaches Redis within about a second."""
    from luffy.metrics import COUNTERS_KEY, count, field_for

    field = field_for("probe", (("kind", "unit"),))
    with app.app_context():
        started = time.perf_counter()
        for _ in range(10_000):
            count("probe", {"kind": "unit"})
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # 10,000 Redis round trips would take about a second alone
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and redis_client.hget(COUNTERS_KEY, field) != b"10000":
        time.sleep(0.1)
    assert redis_client.hget(COUNTERS_KEY, field) == b"10000"


@pytest.fixture
def gunicorn(app, token):
    """The real app under gunicorn: two worker processes, as in production."""
    from local_redis import free_port

    port = free_port()
    log_path = RUNTIME["tmp"] / f"gunicorn-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 (the process writes to it until it stops)
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "2",
            "METRICS_TOKEN": TOKEN,
        },
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/api/v1/home/banners/", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
        assert process.poll() is None, Path(log_path).read_text(errors="replace")
    yield base
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def test_counters_stay_correct_with_several_gunicorn_workers(gunicorn, redis_client):
    def banner_reads(samples):
        return total(samples, "luffy_banner_cache_total")

    time.sleep(1.5)  # the warm-up requests' counts are flushed
    before = banner_reads(parse(requests.get(gunicorn + "/metrics", headers=AUTH, timeout=5).text))
    requests_sent = 300
    for _ in range(requests_sent):
        with requests.Session() as session:  # a new connection each time: both workers serve
            assert session.get(gunicorn + "/api/v1/home/banners/", timeout=5).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        response = requests.get(gunicorn + "/metrics", headers=AUTH, timeout=5)
        assert response.status_code == 200
        reads = banner_reads(parse(response.text)) - before
        if reads >= requests_sent or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert reads == requests_sent
