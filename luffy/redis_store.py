"""The application's own Redis connection (cache locks, sale stock, counters), with short timeouts."""

import redis
from flask import current_app


def init_app(app):
    app.extensions["luffy_redis"] = redis.Redis.from_url(
        app.config["REDIS_URL"],
        socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
        socket_connect_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
        health_check_interval=30,
    )


def get_redis() -> redis.Redis:
    """The Redis client bound to the current app."""
    return current_app.extensions["luffy_redis"]
