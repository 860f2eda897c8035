"""Redis beyond one server: REDIS_URL naming a Sentinel-watched master or a Redis Cluster."""

import time

import pytest
import redis
from conftest import restore_celery
from redis_topologies import SentinelSet

from config import TestingConfig
from luffy import create_app
from luffy.extensions import cache
from luffy.redis_store import get_redis
from luffy.redis_urls import broker_settings, parse_redis_url


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "service", "db", "password"),
    [
        ("redis://127.0.0.1:6379/0", "server", (), "", 0, None),
        (
            "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/mymaster/2",
            "sentinel",
            (("10.0.0.1", 26379), ("10.0.0.2", 26380)),
            "mymaster",
            2,
            "s3cret",
        ),
        ("redis+sentinel://h:26379/cache", "sentinel", (("h", 26379),), "cache", 0, None),
        ("redis+cluster://a:7000,b:7001", "cluster", (("a", 7000), ("b", 7001)), "", 0, None),
    ],
)
def test_redis_url_forms(url, kind, hosts, service, db, password):
    target = parse_redis_url(url)
    assert (target.kind, target.hosts, target.service, target.db, target.password) == (
        kind,
        hosts,
        service,
        db,
        password,
    )


def test_redis_cluster_flag_turns_a_node_url_into_a_cluster():
    target = parse_redis_url("redis://:pw@node1:7000/0", cluster=True)
    assert (target.kind, target.hosts, target.password) == ("cluster", (("node1", 7000),), "pw")


@pytest.mark.parametrize(
    "url", ["redis+sentinel://h:26379", "redis+sentinel://h/mymaster", "redis+cluster://h:x"]
)
def test_bad_redis_urls_say_what_is_wrong(url):
    with pytest.raises(ValueError, match="Redis URL"):
        parse_redis_url(url)


def test_a_sentinel_broker_url_becomes_kombus_form():
    broker, options = broker_settings("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/1")
    assert broker == "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1"
    assert options == {"master_name": "mymaster"}


@pytest.fixture
def sentinels(tmp_path):
    topology = SentinelSet(tmp_path / "sentinel")
    yield topology
    topology.stop()


@pytest.fixture
def app_on(app, monkeypatch):
    """create_app() with REDIS_URL (and optionally the broker) pointing elsewhere."""

    def build(redis_url, **env):
        monkeypatch.setenv("REDIS_URL", redis_url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return create_app(TestingConfig)

    yield build
    restore_celery(app)


def _write_until_it_works(client, key, deadline_seconds):
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return client.set(key, "after")
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_app_follows_a_sentinel_failover(sentinels, app_on):
    other = app_on(sentinels.url())
    with other.app_context():
        client = get_redis()
        client.set("luffy:test:before", "1")
        cache.set("failover", "kept")
        assert cache.get("failover") == "kept"
        sentinels.wait_until_synced()
        sentinels.kill_master()
        new_port = sentinels.wait_for_failover()
        started = time.monotonic()
        assert _write_until_it_works(client, "luffy:test:after", 15)
        assert time.monotonic() - started < 15
        # The promoted replica had the data written before the failover, and now takes writes.
        promoted = redis.Redis(port=new_port)
        assert promoted.get("luffy:test:before") == b"1"
        assert promoted.get("luffy:test:after") == b"after"
        cache.set("failover", "after")
        assert cache.get("failover") == "after"


def test_celery_runs_tasks_through_a_sentinel_broker(sentinels, app_on):
    from conftest import start_worker, stop_worker

    url = sentinels.url(db=1)
    other = app_on(sentinels.url(), CELERY_BROKER_URL=url)
    celery_app = other.extensions["celery"]
    assert celery_app.conf.broker_transport_options["master_name"] == "mymaster"
    worker = start_worker(other, "-c", "1", "-Q", "default", env={"CELERY_BROKER_URL": url})
    try:
        result = celery_app.send_task("tasks.user.add", args=(2, 3), queue="default")
        assert result.get(timeout=30) == 5
    finally:
        stop_worker(worker)
