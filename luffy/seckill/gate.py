"""A WSGI gate in front of Flask for the buy route, the hottest request of a flash sale.

Most of a flash sale's traffic is buy requests, and most of those are refused once the sale
is sold out. Building a Flask request for each costs several times the admission itself, so:

* once this process knows a sale is sold out (for ``SOLD_OUT_MEMORY_SECONDS``), its buy
  requests are refused here: no session, no CSRF check, no Redis. The answer is public and
  changes nothing;
* an ordinary buy request (a JSON body, the Flask session cookie with a user id, the CSRF
  header) is checked here exactly as Flask and Flask-WTF would — the same signed-cookie
  serializer, the same token serializer and comparison (their signatures checked with keys
  derived once, luffy/signatures.py), the same referrer rule over HTTPS — and admitted
  through the same ``admission.admit``.

Anything else, or anything in doubt, goes on to the Flask view, which is the reference:
a missing or bad token, a remember-me login, another session backend, a malformed body.
"""

import hmac
import io
import json

from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import same_origin
from itsdangerous import URLSafeTimedSerializer
from werkzeug.http import parse_cookie

from luffy.metrics import count
from luffy.responses import CODE_FOR_STATUS, SUCCESS, ApiError
from luffy.sessions import SignedCookieSessions
from luffy.signatures import TimedPayloads

MAX_BODY = 256
SOLD_OUT = {"reason": "sold_out"}
JSON = [("Content-Type", "application/json")]


def json_answer(start_response, status, body):
    payload = json.dumps(body, ensure_ascii=False).encode()
    start_response(status, [*JSON, ("Content-Length", str(len(payload)))])
    return [payload]


STATUS_LINES = {
    200: "200 OK",
    400: "400 BAD REQUEST",
    401: "401 UNAUTHORIZED",
    404: "404 NOT FOUND",
    409: "409 CONFLICT",
    429: "429 TOO MANY REQUESTS",
    503: "503 SERVICE UNAVAILABLE",
}


class BuyGate:
    def __init__(self, app, wsgi_app, memory, path, sold_out_msg):
        self.app = app
        self.wsgi_app = wsgi_app
        self.memory = memory
        self.path = path
        self.sold_out = json.dumps(
            {"code": CODE_FOR_STATUS[409], "msg": sold_out_msg}, ensure_ascii=False
        ).encode()
        self.sold_out_headers = [*JSON, ("Content-Length", str(len(self.sold_out)))]
        self._checks = None

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        course_id = self._course_id(environ)
        if course_id is None:
            return self.wsgi_app(environ, start_response)
        if self.memory.knows(course_id):
            count("seckill_refusals", SOLD_OUT)
            start_response("409 CONFLICT", list(self.sold_out_headers))
            return [self.sold_out]
        user_id = self._checked_user(environ)
        if user_id is None:
            return self.wsgi_app(environ, start_response)
        from luffy.seckill import admission

        address = environ.get("REMOTE_ADDR") or "-"
        with self.app.app_context():
            try:
                ticket = admission.admit(user_id, course_id, address)
            except ApiError as error:
                body = {
                    "code": CODE_FOR_STATUS.get(error.status, 150),
                    "msg": error.msg,
                    **error.fields,
                }
                return json_answer(start_response, STATUS_LINES[error.status], body)
        return json_answer(
            start_response, "200 OK", {"code": SUCCESS, "msg": "您正在排队", "task_id": ticket}
        )

    @staticmethod
    def _course_id(environ):
        if not (environ.get("CONTENT_TYPE") or "").startswith("application/json"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again if we pass the request on
        try:
            course_id = json.loads(body).get("course_id")
        except (ValueError, AttributeError):
            return None
        return course_id if type(course_id) is int and 0 < course_id < 2**31 else None

    def _checks_for_app(self):
        """The session and CSRF settings: the same serializers Flask and Flask-WTF use, with
        their keys derived once (luffy/signatures.py); built again when a secret key changes."""
        app, config = self.app, self.app.config
        csrf_key = config.get("WTF_CSRF_SECRET_KEY", app.secret_key)  # Flask-WTF's own lookup
        keys = (app.secret_key, tuple(config.get("SECRET_KEY_FALLBACKS") or ()), csrf_key)
        checks = self._checks
        if checks is not None and checks["keys"] == keys:
            return checks
        login_manager = getattr(app, "login_manager", None)
        usable = (
            type(app.session_interface) in (SecureCookieSessionInterface, SignedCookieSessions)
            and bool(app.secret_key)
            and csrf_key is not None
            and config.get("WTF_CSRF_ENABLED", True)
            and config.get("WTF_CSRF_CHECK_DEFAULT", True)
            and getattr(login_manager, "session_protection", None) != "strong"
        )
        checks = {
            "keys": keys,
            "usable": usable,
            "cookie": config["SESSION_COOKIE_NAME"],
            "session": TimedPayloads(app.session_interface.get_signing_serializer(app))
            if usable
            else None,
            "max_age": int(app.permanent_session_lifetime.total_seconds()),
            "token": TimedPayloads(URLSafeTimedSerializer(csrf_key, salt="wtf-csrf-token"))
            if usable
            else None,
            "time_limit": config.get("WTF_CSRF_TIME_LIMIT", 3600),
            "field": config.get("WTF_CSRF_FIELD_NAME", "csrf_token"),
            "ssl_strict": config.get("WTF_CSRF_SSL_STRICT", True),
        }
        self._checks = checks  # one assignment: safe across threads
        return checks

    def _checked_user(self, environ):
        """The user id when the session and the CSRF token check out, else None (Flask decides)."""
        checks = self._checks_for_app()
        if not checks["usable"]:
            return None
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(checks["cookie"])
        token = environ.get("HTTP_X_CSRFTOKEN") or environ.get("HTTP_X_CSRF_TOKEN")
        if not cookie or not token:
            return None
        session = checks["session"].loads(cookie, max_age=checks["max_age"])
        raw = checks["token"].loads(token, max_age=checks["time_limit"])
        if not isinstance(session, dict) or raw is None:
            return None
        user_id, expected = session.get("_user_id"), session.get(checks["field"])
        if not (
            isinstance(user_id, str)
            and user_id.isdigit()
            and isinstance(expected, str)
            and isinstance(raw, str)
            and hmac.compare_digest(expected, raw)
        ):
            return None
        if environ.get("wsgi.url_scheme") == "https" and checks["ssl_strict"]:
            referrer, host = environ.get("HTTP_REFERER"), environ.get("HTTP_HOST", "")
            if not referrer or not same_origin(referrer, f"https://{host}/"):
                return None
        return int(user_id)
