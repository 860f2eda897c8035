"""Publishing from a web request: short broker timeouts and no retries, so an outage answers fast.

Celery's default publish retries (and the transport's own timeouts) can hold a request for
several seconds when the broker is gone or hangs. Requests that queue a task go through
``publish`` instead: its own connection with ``TIMEOUT_SECONDS`` socket timeouts and one try,
raising ``BrokerUnavailable`` for the caller to turn into a 503 or a form message.
"""

import logging
from contextlib import contextmanager

from flask import current_app
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)
# Two of these (connect, then publish) stay under the 2 s a request may take when the broker
# is down.
TIMEOUT_SECONDS = 0.8


class BrokerUnavailable(Exception):
    """The broker could not be reached (or did not answer) within the short timeout."""


@contextmanager
def quick_connection(timeout=TIMEOUT_SECONDS):
    """A broker connection for writing with ``timeout`` on connect and on every socket call."""
    celery_app = current_app.extensions["celery"]
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_retries": 0}
    with celery_app.connection_for_write(
        connect_timeout=timeout, transport_options=options
    ) as connection:
        yield connection


def publish(task, args=(), kwargs=None, **options):
    """Send ``task`` (a task object or a registered name) once; returns its AsyncResult."""
    celery_app = current_app.extensions["celery"]
    with quick_connection() as connection:
        # The transport's own errors (redis-py's, py-amqp's) besides kombu's and the socket's.
        broker_errors = (
            OperationalError,
            OSError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        try:
            if isinstance(task, str):
                return celery_app.send_task(
                    task, args, kwargs, connection=connection, retry=False, **options
                )
            return task.apply_async(args, kwargs, connection=connection, retry=False, **options)
        except broker_errors as error:
            # Logged with the traceback: kombu counts some plain bugs (a KeyError) as
            # connection errors, and they must stay visible.
            log.warning("Publishing %s failed", getattr(task, "name", task), exc_info=True)
            raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error


def send(name, args=(), kwargs=None, **options):
    """Send the task registered as ``name`` with Celery's own publishing (pooled connections,
    its retry policy): for code running in a worker, which may wait out a short outage.

    luffy/ never imports tasks/ (the tasks import luffy/): it names them.
    """
    return current_app.extensions["celery"].send_task(name, args, kwargs, **options)
