"""Order tasks: text messages to buyers."""

from celery import shared_task

from luffy.sms import SmsError

SMS_CODE_TEXT = (
    "【路飞学城】您的验证码是 {code}，{minutes} 分钟内有效。如非本人操作，请忽略本短信。"
)


@shared_task(
    name="tasks.order.send_sms",
    bind=True,
    autoretry_for=(SmsError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def send_sms(self, mobile):
    """Text ``mobile`` its verification code through the configured SMS backend.

    The code is read from Redis here, never passed in: task arguments are kept in the
    broker, the task_results table, the worker's log and Flower, where a code must not be.
    """
    from flask import current_app

    from luffy.notify.services import current_sms_code
    from luffy.sms import get_sms_backend, masked

    code = current_sms_code(mobile)
    if code is None:  # used or expired before this (late or retried) task ran
        return {"mobile": masked(mobile), "sent": False}
    minutes = max(1, current_app.config["SMS_CODE_TTL"] // 60)
    get_sms_backend().send(mobile, SMS_CODE_TEXT.format(code=code, minutes=minutes))
    return {"mobile": masked(mobile), "sent": True}
