"""Buyer notices: a text (and a mail, when the buyer has an address) for each new order."""

import logging

from luffy.broker import send
from luffy.extensions import db
from luffy.models import Order
from luffy.redis_store import get_redis
from luffy.seckill.keys import notified_key

log = logging.getLogger(__name__)

ORDER_SMS = "【路飞学城】恭喜您秒杀成功：{course}，秒杀价 ¥{price}，订单号 {order_id}。"
NOTIFIED_TTL = 7 * 86400
NOTICE_TASK = "tasks.seckill.notify_buyer"
MAIL_TASK = "tasks.user.send_email"


def notify_buyers(outcomes):
    """Queue a notice for each new order whose buyer has a mobile or an e-mail address."""
    for outcome in outcomes:
        if not (outcome.contact and outcome.order_id):
            continue
        try:
            send(NOTICE_TASK, (outcome.order_id,), queue="notify")
        except Exception as error:  # the order stands; the notice is best effort
            log.warning("Could not queue the notice of order %s: %s", outcome.order_id, error)


def send_order_notice(order_id):
    """Text (and mail, when the buyer has an address) the buyer of ``order_id``, once each."""
    from luffy.sms import get_sms_backend

    order = db.session.get(Order, order_id)
    if order is None:
        return {"order": order_id, "sent": []}
    redis = get_redis()
    text = ORDER_SMS.format(course=order.course.name, price=order.price, order_id=order.id)
    sent = []
    if order.user.mobile and redis.set(
        notified_key(order_id, "sms"), "1", nx=True, ex=NOTIFIED_TTL
    ):
        try:
            get_sms_backend().send(order.user.mobile, text)
        except Exception:
            redis.delete(notified_key(order_id, "sms"))  # the retry sends it
            raise
        sent.append("sms")
    if order.user.email and redis.set(
        notified_key(order_id, "mail"), "1", nx=True, ex=NOTIFIED_TTL
    ):
        send(MAIL_TASK, (order.user.email, "秒杀成功", "notice", {"message": text}))
        sent.append("mail")
    return {"order": order_id, "sent": sent}
