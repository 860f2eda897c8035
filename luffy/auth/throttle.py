"""Login throttling: failed logins counted per username and per client address in Redis.

Built on the ``limits`` library (the engine of Flask-Limiter): a fixed window of
``LOGIN_WINDOW_SECONDS`` that opens at the first failure. After ``LOGIN_USER_LIMIT`` failures
for a username, or ``LOGIN_ADDRESS_LIMIT`` from one address (``request.remote_addr``, the real
client behind the proxy: luffy/proxy.py), every attempt is refused until the window ends,
the right password included, so guessing costs the attacker the whole window.

When Redis does not answer, each process counts in its own memory instead: the limits still
hold per process, and a Redis outage never locks everyone out nor opens the door.
"""

import logging
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
KEY_PREFIX = "luffy:login"


class LoginThrottle:
    def __init__(self, config):
        window = config["LOGIN_WINDOW_SECONDS"]
        self.limits = {
            "user": RateLimitItemPerSecond(config["LOGIN_USER_LIMIT"], window),
            "address": RateLimitItemPerSecond(config["LOGIN_ADDRESS_LIMIT"], window),
        }
        timeout = config["REDIS_SOCKET_TIMEOUT"]
        storage = RedisStorage(
            config["REDIS_URL"],
            key_prefix=KEY_PREFIX,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.shared = FixedWindowRateLimiter(storage)
        self.local = FixedWindowRateLimiter(MemoryStorage())

    def _keys(self, username, address):
        return (("user", (username or "").strip().lower()[:64]), ("address", address or "-"))

    def _run(self, action):
        try:
            return action(self.shared)
        except RedisError as error:
            log.warning("Login throttle counting in process memory: Redis failed (%s)", error)
            return action(self.local)

    def retry_after(self, username, address):
        """Seconds until a login for ``username`` from ``address`` may be tried; 0: now."""

        def check(limiter):
            waits = [
                limiter.get_window_stats(self.limits[kind], kind, key).reset_time - time.time()
                for kind, key in self._keys(username, address)
                if not limiter.test(self.limits[kind], kind, key)
            ]
            return max([0, *(int(wait) + 1 for wait in waits)])

        return self._run(check)

    def failed(self, username, address):
        """Count one failed login against the username and the address."""

        def hit(limiter):
            for kind, key in self._keys(username, address):
                limiter.hit(self.limits[kind], kind, key)

        self._run(hit)

    def succeeded(self, username):
        """A right password ends the username's count (the address keeps its own)."""
        kind, key = self._keys(username, None)[0]
        self._run(lambda limiter: limiter.clear(self.limits[kind], kind, key))


def get_throttle(app):
    throttle = app.extensions.get("luffy_login_throttle")
    if throttle is None:
        throttle = app.extensions["luffy_login_throttle"] = LoginThrottle(app.config)
    return throttle
