"""Fault drills against the real stack (gunicorn + celery worker), with servers of their own.

Each drill starts the Redis (or broker) it breaks, so the session's servers and the other
tests never notice: a Redis killed and restarted under traffic, a broker killed or frozen
while people use the site, and two workers sharing a flash sale when one is SIGKILLed.
(Beat across a PostgreSQL stop and start is drilled in tests/test_beat.py.)
"""

import os
import signal
import threading
import time
from collections import defaultdict

import pytest
import redis
import requests
from live_servers import BIN, LiveProcess, environment, start_gunicorn, wait_until
from local_redis import free_port, start_redis
from seckill_helpers import (
    DatabaseHold,
    add_buyers,
    add_sale,
    assert_consistent,
    order_count,
    session_for,
)

BUY = "/api/v1/user/seckill/seckill/"
RESULT = "/api/v1/user/seckill/get_result/"
# Generous for a shared 2-core machine; a hang (no socket timeout) would take far longer.
PAGE_BOUND_SECONDS = 2.0


class PrivateRedis:
    """A redis-server of the drill's own on a fixed port, which the drill may kill and restart."""

    def __init__(self, data_dir):
        self.port = free_port()
        self.data_dir = data_dir
        self.process = start_redis(self.port, data_dir)

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db=0):
        return redis.Redis.from_url(self.url(db), socket_timeout=2)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def freeze(self):
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self):
        os.killpg(self.process.pid, signal.SIGCONT)

    def start(self):
        self.process = start_redis(self.port, self.data_dir)

    def stop(self):
        if self.process.poll() is None:
            self.thaw()
            self.kill()


@pytest.fixture
def private_redis(tmp_path):
    servers = []

    def make(name):
        server = PrivateRedis(tmp_path / name)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def stack(app, tmp_path):
    """start(env) -> (gunicorn, worker) serving the session's database with ``env`` overrides."""
    processes = []

    def start(overrides, worker=True):
        env = environment(**overrides)
        web = start_gunicorn(free_port(), tmp_path, env)
        processes.append(web)
        if not worker:
            return web, None
        consumer = start_worker_process(tmp_path, env, f"drill-{free_port()}@%h")
        processes.append(consumer)
        return web, consumer

    yield start
    for process in reversed(processes):
        process.stop()


def start_worker_process(log_dir, env, name, *extra):
    """A worker on the drill's broker (not the session's), returned once it says it is ready."""
    worker = LiveProcess(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "-l",
            "INFO",
            "-n",
            name,
            "-c",
            "1",
            "--without-gossip",
            "--without-mingle",
            *extra,
        ],
        log_dir / f"worker-{name.split('@')[0]}.log",
        env,
    )
    wait_until(
        lambda: " ready." in worker.output() or not worker.running(),
        timeout=60,
        message="the worker to be ready",
    )
    assert worker.running(), worker.output()[-3000:]
    return worker


def buyer_session(app, web, user_id):
    cookie, token = session_for(app, user_id)
    session = requests.Session()
    session.cookies.set(app.config["SESSION_COOKIE_NAME"], cookie, domain="127.0.0.1")
    session.headers["X-CSRFToken"] = token
    session.base = web.url
    return session


def buy(session, course_id, timeout=10):
    started = time.monotonic()
    response = session.post(session.base + BUY, json={"course_id": course_id}, timeout=timeout)
    return response, time.monotonic() - started


def final_result(session, ticket, timeout=60):
    def answered():
        body = session.get(session.base + RESULT, params={"task_id": ticket}, timeout=10).json()
        return body if body.get("success") in ("0", "1") else None

    return wait_until(answered, timeout=timeout, interval=0.3, message=f"the result of {ticket}")


def assert_bought(session, ticket, timeout=60):
    body = final_result(session, ticket, timeout)
    assert body["success"] == "1", body


def buy_until_queued(session, course_id, timeout=60):
    """Buy, retrying the 503 "recovering" answers a rebuild gives; returns the ticket."""

    def attempt():
        response, _ = buy(session, course_id)
        assert response.status_code in (200, 503), response.text
        return response.json()["task_id"] if response.status_code == 200 else None

    return wait_until(attempt, timeout=timeout, interval=0.5, message="the buy to be accepted")


class Traffic:
    """Threads fetching pages in a loop; records (url, status or error, seconds) per request."""

    def __init__(self, session, base, paths, threads=4):
        self.results = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(
                target=self._run,
                args=(session, base, paths[i % len(paths) :] + paths[: i % len(paths)]),
            )
            for i in range(threads)
        ]

    def _run(self, session, base, paths):
        while not self.stopping.is_set():
            for path in paths:
                started = time.monotonic()
                try:
                    status = session.get(base + path, timeout=10).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                self.results.append((path, status, time.monotonic() - started))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def summary(self):
        by_path = defaultdict(lambda: defaultdict(int))
        for path, status, _ in self.results:
            by_path[path][status] += 1
        return {path: dict(counts) for path, counts in by_path.items()}


def add_banner(app, title):
    from luffy.extensions import db
    from luffy.models import Banner

    with app.app_context():
        db.session.add(Banner(title=title, image="/static/img/banners/go.svg", orders=1))
        db.session.commit()


def test_redis_restart_under_traffic_pages_keep_answering_cache_and_stock_recover(
    app, private_redis, stack
):
    cache = private_redis("cache")  # REDIS_URL: cache, sale stock, locks; killed below
    broker = private_redis("broker")  # survives, so that orders can still be queued
    add_banner(app, "故障演练")
    course_id, sale_id = add_sale(app, 5, course_name="演练课程")
    first, second = add_buyers(app, 2, prefix="drill")
    web, _worker = stack({"REDIS_URL": cache.url(), "CELERY_BROKER_URL": broker.url(1)})
    alice, bob = buyer_session(app, web, first), buyer_session(app, web, second)

    # Before: the stock is loaded from the database (the first buy triggers it) and sells.
    assert_bought(alice, buy_until_queued(alice, course_id))
    paths = ["/", "/api/v1/home/banners/", "/login", f"/seckill/{course_id}/"]
    with Traffic(buyer_session(app, web, second), web.url, paths) as traffic:
        time.sleep(1)
        cache.kill()
        killed_at = len(traffic.results)
        time.sleep(3)
        during = traffic.results[killed_at:]
        cache.start()  # empty: this Redis keeps nothing on disk
        time.sleep(3)
    assert during, "no request was made while Redis was down"
    failures = [(p, s) for p, s, _ in traffic.results if s != 200]
    assert not failures, traffic.summary()
    slowest = max(seconds for _, _, seconds in during)
    assert slowest < PAGE_BOUND_SECONDS, f"a page took {slowest:.2f} s with Redis down"
    body = requests.get(web.url + "/api/v1/home/banners/", timeout=10).json()
    assert [b["title"] for b in body["results"]] == ["故障演练"]

    # After: the cache is rebuilt in the new Redis, and the stock from the database: the
    # second buyer is served from what is left (4), never from a fresh 5.
    wait_until(
        lambda: cache.client().exists("luffy:cache:home:banners"),
        timeout=15,
        message="the banner cache to be rebuilt",
    )
    assert_bought(bob, buy_until_queued(bob, course_id))
    assert order_count(app, sale_id) == 2
    assert_consistent(app, cache.client(), sale_id, 5)
    from luffy.seckill.keys import sale_key

    assert int(cache.client().hget(sale_key(sale_id), "stock")) == 3


@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_broker_down_requests_needing_it_503_in_time_others_keep_working(
    app, redis_client, private_redis, stack, outage
):
    from luffy.seckill.keys import KICK_KEY

    broker = private_redis("broker")
    course_id, sale_id = add_sale(app, 5, course_name="演练课程")
    buyers = add_buyers(app, 4, prefix="drill")
    web, _worker = stack({"CELERY_BROKER_URL": broker.url(1)})
    sessions = [buyer_session(app, web, user_id) for user_id in buyers]
    # A warm start: the first buy goes through while the broker is up.
    assert_bought(sessions[0], buy_until_queued(sessions[0], course_id))
    # Buys within KICK_SECONDS of a queued order task ride on it without publishing (they
    # are admitted and wait for it); the drill wants the next buy to need the broker.
    wait_until(
        lambda: not redis_client.exists(KICK_KEY), timeout=30, message="the order kick to lapse"
    )

    broker.kill() if outage == "killed" else broker.freeze()
    try:
        response, seconds = buy(sessions[1], course_id)
        assert response.status_code == 503 and seconds < 2.0, (response.status_code, seconds)
        assert response.json()["code"] != 100 and response.json()["msg"]

        # The SMS code is queued with the same short-timeout publish: 503 in time, gone or hung.
        started = time.monotonic()
        sms = sessions[2].post(
            web.url + "/api/v1/user/sms/", json={"mobile": "13912345678"}, timeout=15
        )
        assert sms.status_code == 503 and time.monotonic() - started < 2.0, (
            sms.status_code,
            sms.text,
        )

        started = time.monotonic()
        health = requests.get(web.url + "/healthz", timeout=10)
        assert health.status_code == 503 and time.monotonic() - started < 2.0
        assert health.json()["services"]["broker"]["ok"] is False

        for path in ("/", "/api/v1/home/banners/", "/login", f"/seckill/{course_id}/"):
            started = time.monotonic()
            page = sessions[3].get(web.url + path, timeout=10)
            assert page.status_code == 200 and time.monotonic() - started < 2.0, (
                path,
                page.status_code,
            )
    finally:
        broker.start() if outage == "killed" else broker.thaw()

    # Back: the refused buyer was admitted by no one, so may buy now, and the order is made.
    ticket = buy_until_queued(sessions[1], course_id, timeout=30)
    assert_bought(sessions[1], ticket)
    wait_until(
        lambda: requests.get(web.url + "/healthz", timeout=10).status_code == 200,
        timeout=15,
        message="/healthz to recover",
    )
    assert order_count(app, sale_id) == 2


def test_two_workers_one_sigkilled_during_a_sale_the_other_finishes_exact(
    app, redis_client, private_redis, stack, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor

    from luffy.seckill.keys import PROCESSING_KEYS

    broker = private_redis("broker")
    course_id, sale_id = add_sale(app, 30, course_name="演练课程")
    buyers = add_buyers(app, 45, prefix="drill")
    web, _ = stack({"CELERY_BROKER_URL": broker.url(1)}, worker=False)
    env = environment(CELERY_BROKER_URL=broker.url(1), SECKILL_RECONCILE_SECONDS="3")
    workers = [
        start_worker_process(tmp_path, env, f"{name}-{free_port()}@%h", "-Q", "seckill")
        for name in ("one", "two")
    ]
    beat = LiveProcess(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
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
        sessions = [buyer_session(app, web, user_id) for user_id in buyers]
        with DatabaseHold(app, sale_id) as hold:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda session: buy(session, course_id)[0], sessions))
            admitted = {
                s: r.json()["task_id"]
                for s, r in zip(sessions, answers, strict=False)
                if r.status_code == 200
            }
            assert len(admitted) == 30
            assert all(r.status_code == 409 for r in answers if r.status_code != 200)

            # The worker that took the order task is now blocked on the database mid-batch.
            def busy_worker():
                if not any(redis_client.llen(key) for key in PROCESSING_KEYS):
                    return None
                return next(
                    (w for w in workers if "tasks.seckill.create_order[" in w.output()), None
                )

            doomed = wait_until(
                busy_worker, timeout=30, interval=0.05, message="a worker mid-batch"
            )
            doomed.stop(sig=signal.SIGKILL)
            hold.release()
        survivor = next(w for w in workers if w is not doomed)
        assert order_count(app, sale_id) == 0  # the killed worker wrote nothing

        # The survivor finishes, once beat's reconciliation finds the orphaned batch.
        wait_until(
            lambda: order_count(app, sale_id) == 30,
            timeout=120,
            interval=0.5,
            message="the surviving worker to place every order",
        )
        assert survivor.running() and "tasks.seckill.create_order[" in survivor.output()
    finally:
        beat.stop()
        for worker in workers:
            worker.stop()
    orders = assert_consistent(app, redis_client, sale_id, 30)
    assert len(orders) == 30
    for session, ticket in admitted.items():
        assert_bought(session, ticket, timeout=10)
