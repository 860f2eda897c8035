"""The flash sale on a three-master Redis Cluster: every script's keys share the {seckill} slot."""

import pytest
from conftest import restore_celery
from redis_topologies import LocalCluster
from seckill_helpers import add_buyers, add_sale, order_count, remaining

import config
from luffy import create_app
from luffy.redis_store import get_redis
from luffy.seckill import admission, drain, keys
from luffy.seckill.reconcile import reconcile_sales


@pytest.fixture
def cluster_app(app, tmp_path, monkeypatch):
    cluster = LocalCluster(tmp_path / "cluster")
    monkeypatch.setenv("REDIS_URL", cluster.url())
    try:
        yield create_app(config.TestingConfig)
    finally:
        restore_celery(app)
        cluster.stop()


def test_a_sale_runs_to_its_exact_end_state_on_a_cluster(cluster_app):
    course_id, sale_id = add_sale(cluster_app, 5)
    user_ids = add_buyers(cluster_app, 8, prefix="cluster")
    with cluster_app.app_context():
        redis = get_redis()
        redis.set(keys.KICK_KEY, "test", ex=60)  # no order task is sent: this test drains
        verdicts = []
        for user_id in user_ids:
            try:
                verdicts.append(bool(admission.admit(user_id, course_id, "10.0.0.9")))
            except admission.ApiError as refusal:
                verdicts.append(refusal.msg)
        outcomes = drain.drain_pending()
        report = reconcile_sales()
        stock = int(redis.hget(keys.sale_key(sale_id), "stock"))
        buyers = redis.hlen(keys.buyers_key(sale_id))
    assert verdicts.count(True) == 5 and verdicts[5:] == ["已售罄"] * 3
    assert sorted(o.code for o in outcomes) == ["1"] * 5
    assert order_count(cluster_app, sale_id) == 5 and remaining(cluster_app, sale_id) == 0
    assert (stock, buyers) == (0, 5)
    assert report["problems"] == [] and not report["busy"]
