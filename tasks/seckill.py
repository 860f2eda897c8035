"""Flash-sale tasks: the order task, the buyer's notice and the periodic reconciliation."""

import logging

from celery import shared_task
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from luffy.sms import SmsError

log = logging.getLogger(__name__)

# Database or Redis trouble: try again, waiting longer each time (1, 2, 4 ... 60 s).
MAX_RETRIES = 10


@shared_task(
    name="tasks.seckill.create_order",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def create_order(self, ticket_id=None):
    """Create the order of the admitted buyer ``ticket_id`` and of every other buyer waiting.

    The buy request sends this task only when no order task is already draining the queue, so
    one message serves a whole burst: the order drain (luffy/seckill/drain.py) takes the tickets
    in batches and has their orders written one transaction each (luffy/seckill/orders.py); a
    drainer facing a long backlog sends one more of these so that an idle worker process takes
    a second drain slot. Idempotent: a redelivery or a retry finds the orders written and only
    marks the tickets bought. ``ticket_id`` (optional) is a ticket that fell off the
    queue, put back first (reconciliation uses that).
    """
    from luffy.seckill import drain
    from luffy.seckill.keys import BOUGHT

    try:
        if ticket_id:
            drain.requeue(ticket_id)
        outcomes = drain.drain_pending(wait=1.0)
    except drain.DrainBusy:
        # Every drain slot is taken: those order tasks take our tickets too, unless one died
        # holding its lock: then look again once the lock has expired.
        if drain.waiting_tickets():
            raise self.retry(countdown=drain.LOCK_SECONDS) from None
        return None
    except (DBAPIError, RedisError) as error:
        if self.request.retries >= self.max_retries:
            drain.give_up(f"{type(error).__name__}: {error}")
            raise
        log.warning("Flash-sale orders postponed (%s); retrying.", error)
        raise self.retry(exc=error, countdown=min(60, 2**self.request.retries)) from error
    bought = sum(1 for o in outcomes if o.code == BOUGHT)
    return {"bought": bought, "failed": len(outcomes) - bought}


@shared_task(
    name="tasks.seckill.notify_buyer",
    bind=True,
    acks_late=True,
    autoretry_for=(SmsError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def notify_buyer(self, order_id):
    """Text (and mail) the buyer of ``order_id`` that the flash sale succeeded; once each."""
    from luffy.seckill.notices import send_order_notice

    return send_order_notice(order_id)


@shared_task(name="tasks.seckill.reconcile", acks_late=True)
def reconcile():
    """Check Redis against the database for every live sale and repair what it can (beat)."""
    from luffy.seckill.reconcile import reconcile_sales

    return reconcile_sales()
