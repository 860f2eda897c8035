"""kombu's Redis transport, fixed so a worker survives a Redis restart with unacked messages.

With kombu 5.7 and Celery 5.7, killing the Redis broker under a worker that holds an
unacknowledged message (a countdown/eta task, or a task running with ``acks_late``) made
the worker exit: "Restoring 1 unacknowledged message(s)", then "Unrecoverable error:
AttributeError("'NoneType' object has no attribute 'hostname'")".

What happens: on a lost connection Celery's consumer first ``collect()``s the broker
connection (which detaches the transport: ``transport.client = None``) and then
``close()``s it. That close closes the consumer's channel a second time, and the channel
tries to put its unacked messages back on their queues. The Redis channel builds a new
connection pool from ``transport.client``, which is now None: an AttributeError, which
no one catches because it is not a connection error, so the worker dies. Even without that,
putting the messages back could not work: Redis is down at that moment. They would stay in
Redis's "unacked" hash until ``visibility_timeout`` (hours) and run only then.

The fix, in three small overrides:

* ``Channel._connparams`` raises redis-py's ``ConnectionError`` instead of the
  AttributeError once the transport is detached, so kombu treats it as the connection
  error it is (the consumer reconnects instead of dying);
* ``QoS.restore_unacked`` remembers the delivery tags it could not put back;
* a new channel, once Redis answers again, puts those messages back on their queues at
  once (the same atomic per-tag restore kombu uses), so countdown/eta messages run after
  the broker is back, not hours later.

Redis keeps the unacked hash on disk when it persists (``make run``'s own redis-server uses
an append-only file); a message whose copy Redis lost is not there to restore. A task that
was *running* when the connection dropped runs again after the restore (at-least-once, as
with any ``acks_late`` redelivery): tasks are idempotent.

Selected by ``broker_transport`` in config.py when the broker URL is ``redis://`` or a
Sentinel-watched ``redis+sentinel://`` master (``rediss://`` keeps kombu's own transport).
"""

import logging
import os
import threading

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Delivery tags this process held unacked when its broker connection broke, by broker
# (host, port, database), waiting for a channel that can reach that Redis again. Per
# process: a forked child never owned them.
_unrestored = {}
_lock = threading.Lock()


def _forget_in_child():
    global _lock
    _unrestored.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def unrestored_tags(broker):
    """The delivery tags still waiting to be put back on ``broker`` (a copy)."""
    with _lock:
        return set(_unrestored.get(broker, ()))


class QoS(kombu_redis.QoS):
    """Remembers the unacked messages it could not put back while Redis was unreachable."""

    def restore_unacked(self, client=None):
        tags = list(self._delivered)
        try:
            super().restore_unacked(client)
        except RedisError:
            with _lock:
                _unrestored.setdefault(self.channel.broker, set()).update(tags)
            self._delivered.clear()
            log.warning(
                "Redis unreachable: %d unacked message(s) will be put back on their queues "
                "once it answers again.",
                len(tags),
            )


class RestoringChannel:
    """Mixed into kombu's Redis channels: restores the messages an earlier, broken channel
    held, and reports a detached transport as the connection error it is."""

    QoS = QoS

    def __init__(self, connection, *args, **kwargs):
        client = connection.client  # the kombu Connection, detached later on a failure
        self.broker = (client.hostname, client.port, str(client.virtual_host))
        super().__init__(connection, *args, **kwargs)  # pings Redis: raises while it is down
        self._restore_held_messages()

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)

    def _restore_held_messages(self):
        tags = unrestored_tags(self.broker)
        if not tags or not self.do_restore:
            return
        restored = 0
        for tag in tags:
            try:
                self.qos.restore_by_tag(tag)
            except RedisError as error:
                log.warning("Putting back unacked message %s failed: %s", tag, error)
                return
            with _lock:
                _unrestored.get(self.broker, set()).discard(tag)
            restored += 1
        log.warning("Put %d unacked message(s) back on their queues after a reconnect.", restored)


class Channel(RestoringChannel, kombu_redis.Channel):
    """kombu's Redis channel with the fix."""


class SentinelChannel(RestoringChannel, kombu_redis.SentinelChannel):
    """kombu's Redis Sentinel channel with the fix."""


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the fixed channel."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Redis Sentinel transport with the fixed channel."""

    Channel = SentinelChannel
