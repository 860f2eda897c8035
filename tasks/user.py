"""User tasks: the demo ``add`` and templated e-mail."""

import logging
import smtplib

from celery import shared_task

log = logging.getLogger(__name__)

# A redelivered message (worker lost after sending) must not mail twice.
SENT_KEY = "luffy:mail:sent:{}"
SENT_TTL = 7 * 86400


@shared_task(name="tasks.user.add")
def add(x, y):
    """Add two numbers: the smallest task, for trying the three ways to run one."""
    return x + y


@shared_task(
    name="tasks.user.send_email",
    bind=True,
    # Connection refused, timeouts, 4xx replies: try again later, waiting longer each time
    # (about 5, 10, 20 ... s, capped at 10 min, with jitter so a queue of mails spreads out).
    autoretry_for=(smtplib.SMTPException, OSError),
    dont_autoretry_for=(smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_email(self, to, subject, template="notice", context=None):
    """Mail ``templates/mail/<template>.html`` and ``.txt``, rendered with ``context``, to
    ``to``."""
    from flask import render_template

    from luffy.mailer import send_mail
    from luffy.redis_store import get_redis

    recipients = [to] if isinstance(to, str) else list(to)
    if not template.replace("_", "").isalnum():
        raise ValueError(f"bad template name {template!r}")
    sent_key = SENT_KEY.format(self.request.id) if self.request.id else None
    if sent_key and get_redis().exists(sent_key):
        log.info("Mail %s already sent, not sending it again.", self.request.id)
        return {"to": recipients, "sent": False}
    context = dict(context or {}, subject=subject)
    text = render_template(f"mail/{template}.txt", **context)
    html = render_template(f"mail/{template}.html", **context)
    send_mail(subject, recipients, text, html)
    if sent_key:
        get_redis().set(sent_key, "1", ex=SENT_TTL)
    return {"to": recipients, "sent": True}
