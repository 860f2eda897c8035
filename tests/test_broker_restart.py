"""A broker that crashes and comes back under a running worker: the worker lives, nothing is lost.

The Redis test kills (SIGKILL) a private, persistent redis-server used as the broker while a
real worker holds unacknowledged countdown messages, restarts it on the same port and data
directory, and checks that the worker is still alive and every message ran exactly once.
The RabbitMQ test (production matrix only) cannot kill the shared server: it closes every
connection of the test's vhost with ``rabbitmqctl close_connection``, which the worker sees as
a broker that went away.
"""

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import redis
from conftest import RUNTIME, restore_celery, start_worker, stop_worker
from live_servers import wait_until
from local_redis import free_port, start_redis

from luffy.broker import publish
from luffy.redis_store import get_redis

COUNTDOWN_SECONDS = 10


@pytest.fixture
def redis_broker():
    """A private redis-server with an append-only file, as ``make run`` starts it."""
    port = free_port()
    data_dir = RUNTIME["tmp"] / f"broker-{uuid.uuid4().hex[:6]}"
    server = {"port": port, "dir": data_dir}
    server["process"] = start_redis(port, data_dir, persist=True)
    yield server
    server["process"].kill()
    server["process"].wait()
    shutil.rmtree(data_dir, ignore_errors=True)


def app_for_broker(monkeypatch, url):
    from config import TestingConfig
    from luffy import create_app

    monkeypatch.setenv("CELERY_BROKER_URL", url)
    return create_app(TestingConfig)


def send(app, tag, countdown=None):
    """Queue ``tests.effect_once`` for ``tag`` the way web requests publish (luffy.broker): it
    counts its runs under luffy:test:<tag>:runs."""
    with app.app_context():
        return publish("tests.effect_once", args=[tag], countdown=countdown)


def run_counts(app, tags):
    with app.app_context():
        client = get_redis()
        return {tag: int(client.get(f"luffy:test:{tag}:runs") or 0) for tag in tags}


def effects(app, tag):
    with app.app_context():
        return int(get_redis().get(f"luffy:test:{tag}:effects") or 0)


def held_unacked(url):
    """How many messages the Redis broker lists as delivered and not yet acknowledged."""
    return redis.Redis.from_url(url).hlen("unacked")


def test_worker_survives_a_redis_broker_crash_and_runs_every_message_once(
    app, redis_broker, monkeypatch
):
    url = f"redis://127.0.0.1:{redis_broker['port']}/1"
    broker_app = app_for_broker(monkeypatch, url)
    worker = start_worker(broker_app, "-c", "2", env={"CELERY_BROKER_URL": url})
    try:
        before = [f"before-{n}" for n in range(3)]
        delayed = [f"delayed-{n}" for n in range(4)]
        after = [f"after-{n}" for n in range(2)]
        for tag in before:
            send(broker_app, tag)
        wait_until(lambda: set(run_counts(app, before).values()) == {1}, message="first runs")
        for tag in delayed:
            send(broker_app, tag, countdown=COUNTDOWN_SECONDS)
        # And one running when the broker dies (acknowledged only once it has finished).
        with broker_app.app_context():
            publish("tests.effect_once", args=["running", 6])
        wait_until(lambda: run_counts(app, ["running"])["running"] == 1, message="running")
        wait_until(lambda: held_unacked(url) == len(delayed) + 1, message="messages held")
        time.sleep(1.5)  # the append-only file is synced once a second

        os.kill(redis_broker["process"].pid, signal.SIGKILL)
        redis_broker["process"].wait()
        time.sleep(3)  # the worker notices and retries meanwhile
        assert worker.poll() is None, worker.log_path.read_text(errors="replace")
        redis_broker["process"] = start_redis(
            redis_broker["port"], redis_broker["dir"], persist=True
        )
        for tag in after:
            send(broker_app, tag)

        everything = before + delayed + after
        wait_until(
            lambda: all(run_counts(app, everything).values()),
            timeout=60,
            message="every message to run after the restart",
        )
        time.sleep(3)  # a duplicate would show up by now
        assert run_counts(app, everything) == {tag: 1 for tag in everything}
        # The task that was running is delivered again (at-least-once); its effect, keyed on
        # the task id, happens once.
        wait_until(lambda: effects(app, "running") == 1, timeout=60, message="running's effect")
        time.sleep(3)
        assert effects(app, "running") == 1
        assert run_counts(app, ["running"])["running"] == 2
        assert worker.poll() is None, worker.log_path.read_text(errors="replace")
        # Its control channel answers too (asked over a new connection: this process's pooled
        # ones died with the old server).
        celery_app = broker_app.extensions["celery"]
        with celery_app.connection_for_write() as connection:
            replies = celery_app.control.ping(
                destination=[worker.hostname], timeout=5, connection=connection
            )
        assert replies, "the worker did not answer a ping after the restart"
        assert held_unacked(url) == 0
    finally:
        stop_worker(worker)
        restore_celery(app)


def test_worker_survives_a_sentinel_failover_of_its_broker(app, tmp_path, monkeypatch):
    """A Sentinel-watched broker whose master is killed: the worker follows the promoted
    replica, and the countdown messages it held (replicated before the kill) run once."""
    from redis_topologies import SentinelSet

    sentinels = SentinelSet(tmp_path / "sentinel")
    url = sentinels.url(db=1)
    try:
        broker_app = app_for_broker(monkeypatch, url)
        worker = start_worker(broker_app, "-c", "2", env={"CELERY_BROKER_URL": url})
        try:
            delayed = [f"sentinel-delayed-{n}" for n in range(3)]
            for tag in delayed:
                send(broker_app, tag, countdown=COUNTDOWN_SECONDS)
            replica = f"redis://127.0.0.1:{sentinels.replica_port}/1"
            wait_until(lambda: held_unacked(replica) == len(delayed), message="replicated")
            sentinels.kill_master()
            sentinels.wait_for_failover()
            assert worker.poll() is None, worker.log_path.read_text(errors="replace")
            after = ["sentinel-after"]
            wait_until(lambda: send_when_accepted(broker_app, after[0]), timeout=30)
            everything = delayed + after
            wait_until(
                lambda: all(run_counts(app, everything).values()),
                timeout=60,
                message="every message to run after the failover",
            )
            time.sleep(3)  # a duplicate would show up by now
            assert run_counts(app, everything) == {tag: 1 for tag in everything}
            assert worker.poll() is None, worker.log_path.read_text(errors="replace")
        finally:
            stop_worker(worker)
    finally:
        restore_celery(app)
        sentinels.stop()


def send_when_accepted(app, tag):
    """Publish once the broker takes messages again (True), else False."""
    from luffy.broker import BrokerUnavailable

    try:
        send(app, tag)
    except BrokerUnavailable:
        return False
    return True


@pytest.mark.skipif(
    not os.environ.get("LUFFY_TEST_BROKER_URL", "").startswith("amqp")
    or not shutil.which("rabbitmqctl"),
    reason="needs the RabbitMQ of the production matrix (make test-prod) and rabbitmqctl",
)
def test_worker_survives_rabbitmq_closing_its_connections(app, monkeypatch):
    """On a vhost of the drill's own, so that cutting its connections leaves the test
    session's own (pooled) connections alone."""
    from urllib.parse import urlsplit, urlunsplit

    vhost = f"luffy_drill_{uuid.uuid4().hex[:10]}"
    base = urlsplit(os.environ["LUFFY_TEST_BROKER_URL"])
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, base.username or "guest", ".*", ".*", ".*")
        url = urlunsplit(base._replace(path="/" + vhost))
        broker_app = app_for_broker(monkeypatch, url)
        worker = start_worker(broker_app, "-c", "2", env={"CELERY_BROKER_URL": url})
        try:
            cut_and_check(app, broker_app, worker, vhost)
        finally:
            stop_worker(worker)
    finally:
        restore_celery(app)
        rabbitmqctl("delete_vhost", vhost)


def rabbitmqctl(*args):
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def cut_and_check(app, broker_app, worker, vhost):
    delayed = [f"amqp-delayed-{n}" for n in range(3)]
    for tag in delayed:
        send(broker_app, tag, countdown=COUNTDOWN_SECONDS)
    with broker_app.app_context():  # long enough to outlast the rabbitmqctl calls below
        publish("tests.effect_once", args=["amqp-running", 20])
    wait_until(lambda: run_counts(app, ["amqp-running"])["amqp-running"] == 1)
    listing = rabbitmqctl("list_connections", "pid", "vhost")
    pids = [
        line.split("\t")[0]
        for line in listing.splitlines()
        if line.endswith("\t" + vhost) and line.startswith("<")
    ]
    assert pids, listing
    for pid in pids:
        rabbitmqctl("close_connection", pid, "broker restart drill")
    tags = [*delayed, "amqp-after"]
    send(broker_app, "amqp-after")
    wait_until(lambda: all(run_counts(app, tags).values()), timeout=60, message="every message")
    time.sleep(3)
    assert run_counts(app, tags) == {tag: 1 for tag in tags}
    # The task running at the cut is stopped and runs again; its effect happens once.
    wait_until(lambda: effects(app, "amqp-running") == 1, timeout=90)
    assert run_counts(app, ["amqp-running"])["amqp-running"] == 2
    assert worker.poll() is None, worker.log_path.read_text(errors="replace")
