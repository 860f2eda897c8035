"""The application's own Redis connection (cache locks, sale stock, counters), with short timeouts."""

import hashlib
import os
import socket
import struct
import sys

import redis
from flask import current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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


def with_kernel_timeouts(connection_class):
    """``connection_class`` whose plain TCP or Unix sockets time out in the kernel (64-bit Linux).

    A Python socket with a timeout polls before every send and receive: two more system calls
    per round trip, each letting go of the GIL, and in a threaded web worker each hand-over
    costs a context switch (measured: 8 threads spend about 15% more CPU per admission). The
    same timeout as SO_RCVTIMEO/SO_SNDTIMEO on a blocking socket needs neither; a stuck read or
    write then ends after the same time with redis-py's ConnectionError ("Resource temporarily
    unavailable") instead of its TimeoutError. TLS sockets, sub-millisecond timeouts and other
    platforms keep Python's timeout.
    """
    if not (sys.platform.startswith("linux") and struct.calcsize("@l") == 8):
        return connection_class

    class KernelTimeoutConnection(connection_class):
        def _connect(self):
            sock = super()._connect()
            timeout = sock.gettimeout()
            if type(sock) is socket.socket and timeout and timeout >= 0.001:
                interval = struct.pack("@ll", int(timeout), int(timeout % 1 * 1_000_000))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)
                sock.settimeout(None)
            return sock

    return KernelTimeoutConnection


class DirectScript:
    """One Lua script run on connections of its own: ``register_script`` for the hottest path.

    redis-py's pool polls every connection it lends for unread data and wraps every command in
    retry and observability code; on the flash sale's admission that is a third of the Python
    work of the request, and the poll is one more system call (and GIL hand-over) per request.
    Here a connection goes back to the idle stack only after a complete reply, so it never holds
    unread data. When an idle connection fails (Redis restarted, a proxy or Redis's ``timeout``
    closed it), the stack is emptied (the others are stale too) and the script runs once more on
    a new connection; a new connection that fails raises at once (the caller answers 503). A
    script may therefore run twice when Redis died after running it: Luffy's scripts are safe to
    repeat (admission answers "already bought" with the first ticket). The connections keep the
    client's settings (address, password, timeouts, TLS, the 30 s health-check PING of an idle
    connection), their timeouts kept by the kernel (``with_kernel_timeouts``); they are not the
    client pool's, so ``close()`` closes them. NOSCRIPT (a restarted or flushed Redis) sends the
    source once.
    """

    def __init__(self, client: redis.Redis, source: str):
        pool = client.connection_pool
        self._connection_class = with_kernel_timeouts(pool.connection_class)
        self._connection_kwargs = pool.connection_kwargs
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._idle = []  # list.append/pop are atomic: no lock needed across threads
        self._pid = os.getpid()

    def __call__(self, keys=(), args=()):
        if self._pid != os.getpid():  # a forked child never shares its parent's sockets
            self._idle, self._pid = [], os.getpid()
        try:
            connection = self._idle.pop()
        except IndexError:
            return self._run(self._connection_class(**self._connection_kwargs), keys, args)
        try:
            return self._run(connection, keys, args)
        except (RedisConnectionError, RedisTimeoutError):
            self._idle = []  # one stale connection: the rest are likely stale too
            return self._run(self._connection_class(**self._connection_kwargs), keys, args)

    def _run(self, connection, keys, args):
        try:
            try:
                connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
                reply = connection.read_response()
            except NoScriptError:
                connection.send_command("EVAL", self.source, len(keys), *keys, *args)
                reply = connection.read_response()
        except ResponseError:
            self._idle.append(connection)  # an error reply was read whole: the connection is fine
            raise
        except BaseException:
            connection.disconnect()
            raise
        self._idle.append(connection)
        return reply

    def close(self):
        """Close the idle connections (tests, shutdown)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()
