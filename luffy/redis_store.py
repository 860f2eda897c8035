"""The application's own Redis client (cache locks, sale stock, counters), with short timeouts.

One redis-py client per app, configured once: its connection pool is shared by the threads of
a web worker, and a dead Redis answers within ``REDIS_SOCKET_TIMEOUT`` instead of hanging the
request. The health check PINGs a connection idle for 30 s before reusing it, so a Redis
restart or a proxy that closed idle connections costs no failed request.
"""

import redis
from flask import current_app

from luffy.redis_urls import cache_settings, parse_redis_url, redis_client


def init_app(app):
    """The app's Redis client, and Flask-Caching's settings for the same Redis (call first)."""
    target = parse_redis_url(app.config["REDIS_URL"], cluster=app.config.get("REDIS_CLUSTER"))
    for key, value in cache_settings(target).items():
        app.config.setdefault(key, value)
    app.extensions["luffy_redis_target"] = target
    app.extensions["luffy_redis"] = redis_client(
        target,
        socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
        socket_connect_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
        health_check_interval=30,
    )


def get_redis() -> redis.Redis:
    """The Redis client bound to the current app."""
    return current_app.extensions["luffy_redis"]
