"""The flash sale's fast path: sold-out refusals answered before Flask builds a request.

Once a sale is sold out, nearly every buy request is refused, and building a Flask request
(its session, Flask-Login, the CSRF check) for each costs several times the answer. While
``SECKILL_FAST_PATH`` is on (the default), this WSGI middleware answers a buy request for a
course this process saw sold out less than ``SOLD_OUT_MEMORY_SECONDS`` ago with the same 409
the view gives, without a session, Flask-Login or Redis: the answer is public and changes
nothing, so it needs no authentication. Anything else (another route, a body it cannot read,
a course not known to be sold out) goes on to Flask untouched, where the buy view
authenticates through Flask-Login and checks CSRF through Flask-WTF. With the setting off,
every buy request goes to the view, which gives the same answers.
docs/benchmarks.md has the refusal and admission figures with it on and off.
"""

import io
import json

from luffy.metrics import count
from luffy.responses import CODE_FOR_STATUS

MAX_BODY = 256
SOLD_OUT = {"reason": "sold_out"}


class SoldOutGate:
    """WSGI middleware in front of ``app.wsgi_app`` for POSTs to ``path``."""

    def __init__(self, wsgi_app, memory, path, sold_out_msg):
        self.wsgi_app = wsgi_app
        self.memory = memory
        self.path = path
        self.body = json.dumps(
            {"code": CODE_FOR_STATUS[409], "msg": sold_out_msg}, ensure_ascii=False
        ).encode()
        self.headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.body))),
        ]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == "POST":
            course_id = course_id_of(environ)
            if course_id is not None and self.memory.knows(course_id):
                count("seckill_refusals", SOLD_OUT)
                start_response("409 CONFLICT", list(self.headers))
                return [self.body]
        return self.wsgi_app(environ, start_response)


def course_id_of(environ):
    """The ``course_id`` of a small JSON body, else None; the body stays readable for Flask."""
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


def init_app(app, memory, path, sold_out_msg):
    """Put the gate in front of ``app`` when SECKILL_FAST_PATH is on."""
    if app.config["SECKILL_FAST_PATH"]:
        app.wsgi_app = SoldOutGate(app.wsgi_app, memory, path, sold_out_msg)
