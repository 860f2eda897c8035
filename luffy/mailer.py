"""Sending mail through Flask-Mail with a time limit on every SMTP connect and reply."""

import smtplib

from flask import current_app
from flask_mail import Connection, Message


class TimedConnection(Connection):
    """Flask-Mail's connection, but an SMTP server that never answers costs MAIL_TIMEOUT, not
    forever."""

    def configure_host(self):
        timeout = current_app.config.get("MAIL_TIMEOUT", 10)
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def send_mail(subject, recipients, text, html=None):
    """Send one message now (raises smtplib/socket errors; callers decide whether to retry)."""
    message = Message(subject=subject, recipients=list(recipients), body=text, html=html)
    with TimedConnection(current_app.extensions["mail"]) as connection:
        connection.send(message)
    return message
