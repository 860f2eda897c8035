"""``GET /healthz``: the state of the database, Redis and the broker.

Anyone (a load balancer, an uptime probe) learns ok or not per service; the error text and
timings, which name internal hosts and ports, only a caller holding ``METRICS_TOKEN``
(``Authorization: Bearer ...``, as for ``/metrics``).
"""

import time

from flask import Blueprint, jsonify
from sqlalchemy import text

from luffy.broker import quick_connection
from luffy.dashboard.exporter import token_matches
from luffy.extensions import db
from luffy.redis_store import get_redis

bp = Blueprint("health", __name__)

BROKER_TIMEOUT_SECONDS = 1.0


def check_database():
    db.session.execute(text("SELECT 1"))


def check_redis():
    get_redis().ping()


def check_broker():
    # Its own connection with short socket timeouts: a broker that hangs (accepts, never
    # answers) costs BROKER_TIMEOUT_SECONDS, not the transport's default timeouts and retries.
    with quick_connection(BROKER_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        if connection.transport.driver_type == "redis":
            # Connecting alone does not talk to Redis; a PING does (and times out if it hangs).
            connection.default_channel.client.ping()


CHECKS = {"database": check_database, "redis": check_redis, "broker": check_broker}


@bp.get("/healthz")
def healthz():
    services = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
            services[name] = {"ok": True}
        except Exception as error:  # any failure is the answer we report, never a 500
            if name == "database":
                db.session.rollback()
            services[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        services[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    down = [name for name, state in services.items() if not state["ok"]]
    if not token_matches():
        services = {name: {"ok": state["ok"]} for name, state in services.items()}
    body = {
        "code": 100 if not down else 153,
        "msg": "ok" if not down else "unavailable: " + ", ".join(down),
        "services": services,
    }
    return jsonify(body), 503 if down else 200
