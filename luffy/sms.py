"""SMS sending behind one small interface, the backend chosen by ``SMS_BACKEND``.

``get_sms_backend().send(mobile, text)`` sends one message or raises ``SmsError``.
``console`` (the default) only logs the text; ``http`` POSTs ``{"mobile", "text"}`` as JSON
to ``SMS_HTTP_URL`` (with ``Authorization: Bearer SMS_HTTP_TOKEN`` when set), which is the
shape of most SMS gateways' APIs; any other value is a dotted path to a class taking the app.
"""

import abc
import json
import logging
import re
import urllib.error
import urllib.request

from flask import current_app
from werkzeug.utils import import_string

log = logging.getLogger(__name__)


class SmsError(Exception):
    """The message was not accepted; a task may retry."""


def masked(mobile):
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) >= 7 else "****"


class SmsBackend(abc.ABC):
    """The interface: ``send(mobile, text)`` returns nothing or raises SmsError."""

    def __init__(self, app):
        self.app = app

    @abc.abstractmethod
    def send(self, mobile, text):
        """Deliver ``text`` to ``mobile``."""


class ConsoleSmsBackend(SmsBackend):
    """Development: the message goes to the log instead of a phone. In production the log
    gets the text with its digits hidden: a verification code never lands in a log there."""

    def send(self, mobile, text):
        if self.app.config.get("ENV_NAME") == "production":
            log.info("SMS to %s: %s", masked(mobile), re.sub(r"\d", "*", text))
        else:
            log.info("SMS to %s: %s", mobile, text)


class HttpSmsBackend(SmsBackend):
    """A provider's HTTP API: one JSON POST per message, 2xx means accepted."""

    def __init__(self, app):
        super().__init__(app)
        self.url = app.config.get("SMS_HTTP_URL")
        self.token = app.config.get("SMS_HTTP_TOKEN")
        self.timeout = app.config.get("SMS_HTTP_TIMEOUT", 5)
        if not self.url:
            raise RuntimeError("SMS_BACKEND=http needs SMS_HTTP_URL.")

    def send(self, mobile, text):
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"mobile": mobile, "text": text}, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise SmsError(f"SMS provider answered {error.code} for {masked(mobile)}") from error
        except (urllib.error.URLError, OSError) as error:
            raise SmsError(f"SMS provider unreachable: {error}") from error
        log.info("SMS to %s accepted by the provider.", masked(mobile))


BACKENDS = {"console": ConsoleSmsBackend, "http": HttpSmsBackend}


def get_sms_backend() -> SmsBackend:
    """The configured backend for the current app (built once per app)."""
    backend = current_app.extensions.get("luffy_sms")
    if backend is None:
        name = current_app.config.get("SMS_BACKEND") or "console"
        backend_class = BACKENDS.get(name) or import_string(name)
        backend = backend_class(current_app._get_current_object())
        current_app.extensions["luffy_sms"] = backend
    return backend
