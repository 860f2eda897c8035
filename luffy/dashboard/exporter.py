"""``GET /metrics``: Prometheus text format, for a scraper holding ``METRICS_TOKEN``.

Counters come from ``luffy.metrics`` (summed over every process in Redis). Queue lengths,
workers online and whether the broker answers come from the live snapshot the dashboard also
uses (``luffy.dashboard.live``): a scrape never waits for the workers; it answers from the
last snapshot and starts a new one in the background when that one is older than
``SNAPSHOT_MAX_AGE_SECONDS`` (``luffy_live_state_age_seconds`` says how old it is). Until a
process has its first snapshot, ``luffy_live_state_loaded`` is 0 and those gauges are absent.
"""

import hmac
import re

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from luffy.dashboard.live import live_state
from luffy.metrics import counters_for
from luffy.responses import refusal

bp = Blueprint("monitoring", __name__)

DESCRIPTIONS = {
    "tasks": "Celery tasks by name and state (SENT by publishers, the rest by workers).",
    "banner_cache": "Banner list reads by result (hit, miss) and layer (process copy, Redis).",
    "seckill_admissions": "Flash-sale buyers admitted by the Redis gate.",
    "seckill_refusals": "Flash-sale buy requests refused, by reason.",
    "seckill_orders": "Flash-sale orders, by state.",
}
# A scrape older than this (Prometheus scrapes every 15 s by default) starts a new snapshot.
SNAPSHOT_MAX_AGE_SECONDS = 10
INVALID_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name):
    name = INVALID_NAME.sub("_", name)
    return name if not name[:1].isdigit() else f"_{name}"


class LuffyCollector:
    """Built for one scrape: the shared counters and the live snapshot of workers and queues."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        yield from self.counters()
        yield from self.broker()

    def counters(self):
        up = GaugeMetricFamily(
            "luffy_metrics_store_up", "1 when the shared counters were read from Redis."
        )
        try:
            totals = counters_for(self.app).totals()
            up.add_metric([], 1)
        except RedisError:
            totals = {}
            up.add_metric([], 0)
        yield up
        families = {}
        for (name, labels), value in sorted(totals.items()):
            family = families.get(name)
            if family is None:
                family = families[name] = Metric(
                    f"luffy_{metric_name(name)}",
                    DESCRIPTIONS.get(name, f"Luffy counter {name}."),
                    "counter",
                )
            family.add_sample(
                f"luffy_{metric_name(name)}_total",
                {metric_name(key): str(label) for key, label in labels},
                float(value),
            )
        yield from families.values()

    def broker(self):
        snapshot = live_state(self.app).latest(SNAPSHOT_MAX_AGE_SECONDS)
        loaded = GaugeMetricFamily(
            "luffy_live_state_loaded", "1 once workers and queues were asked at least once."
        )
        loaded.add_metric([], 0 if snapshot is None else 1)
        yield loaded
        if snapshot is None:
            return
        age = GaugeMetricFamily(
            "luffy_live_state_age_seconds", "Seconds since workers and queues were last asked."
        )
        age.add_metric([], round(snapshot.age, 3))
        up = GaugeMetricFamily("luffy_broker_up", "1 when the Celery broker answered.")
        up.add_metric([], 1 if snapshot.broker_up else 0)
        queues = GaugeMetricFamily(
            "luffy_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for queue, info in (snapshot.queues.get("data") or {}).items():
            queues.add_metric([queue], info["messages"])
        workers = GaugeMetricFamily("luffy_workers_online", "Celery workers answering inspect.")
        workers.add_metric([], snapshot.workers_online)
        yield from (age, up, queues, workers)


def token_matches():
    expected = current_app.config.get("METRICS_TOKEN") or ""
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@bp.get("/metrics")
def metrics():
    if not current_app.config.get("METRICS_TOKEN"):
        return refusal(403, "metrics are disabled: set METRICS_TOKEN")
    if not request.headers.get("Authorization"):
        return refusal(401, "metrics need Authorization: Bearer <METRICS_TOKEN>")
    if not token_matches():
        return refusal(403, "wrong metrics token")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LuffyCollector(current_app._get_current_object()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
