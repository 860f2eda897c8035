"""Sending one entry, telling a broker that cannot be reached (retry later) from a row that
cannot be sent as written (disable it and say why)."""

from celery.utils.log import get_logger
from kombu.exceptions import EncodeError
from kombu.exceptions import OperationalError as BrokerError

log = get_logger(__name__)
_broker_errors = {}


def connection_errors(app):
    """The broker transport's own connection errors (kombu lists them per transport)."""
    if app not in _broker_errors:
        try:
            _broker_errors[app] = tuple(app.connection_for_write().connection_errors)
        except Exception:  # an unknown transport: the generic errors still apply
            _broker_errors[app] = ()
    return _broker_errors[app]


def send_group(app, producer, group, retry_seconds):
    """Send each entry; for each, True, False (broker: retry) or a reason (bad row).

    Through kombu's publish batch: the Redis transport pipelines the messages (one round
    trip per group instead of one per message); other transports send each at once. If the
    batch cannot be flushed, none of its messages is counted as sent.
    """
    outcomes = []
    try:
        with producer.batch(max_size=10 * len(group) + 10):
            for entry in group:
                log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
                outcomes.append(send_entry(app, producer, entry, retry_seconds))
    except Exception as error:  # the flush failed: nothing in the group reached the broker
        log.error(
            "beat: could not send %d task(s), broker unavailable; retrying in %ss: %s",
            sum(outcome is True for outcome in outcomes),
            retry_seconds,
            error,
        )
        outcomes = [False if outcome is True else outcome for outcome in outcomes]
        outcomes += [False] * (len(group) - len(outcomes))
    return outcomes


def send_entry(app, producer, entry, retry_seconds):
    """True when sent; False when the broker failed (retry); a reason when the row is bad."""
    try:
        task = app.tasks.get(entry.task)
        if task is not None:
            task.apply_async(entry.args, entry.kwargs, producer=producer, **entry.options)
        else:
            app.send_task(entry.task, entry.args, entry.kwargs, producer=producer, **entry.options)
    except (BrokerError, OSError, *connection_errors(app)) as error:
        log.error(
            "beat: could not send %r, broker unavailable; retrying in %ss: %s",
            entry.name,
            retry_seconds,
            error,
        )
        return False
    except (TypeError, ValueError, EncodeError) as error:
        # Celery's argument check or the serializer refused what the row holds: sending it
        # again would fail the same way.
        return f"Celery 拒绝发送：{type(error).__name__}: {error}"[:500]
    except Exception:  # anything else is not provably the row's fault: retry
        log.exception("beat: could not send %r; retrying in %ss", entry.name, retry_seconds)
        return False
    return True
