"""A WSGI gate in front of Flask: once this process knows a sale is sold out, its buy requests
are refused here, before Flask builds a request, opens the session or checks CSRF.

That is what keeps refusals after a sell-out as cheap as a bare route: they are most of the
traffic of a flash sale and the answer ("sold out") is public and changes nothing. Anything
else, or anything unusual, goes on to the Flask view, which is the reference behaviour.
"""

import io
import json

from luffy.responses import CODE_FOR_STATUS

MAX_BODY = 256


class SoldOutGate:
    def __init__(self, wsgi_app, memory, path, msg):
        self.wsgi_app = wsgi_app
        self.memory = memory
        self.path = path
        self.body = json.dumps({"code": CODE_FOR_STATUS[409], "msg": msg}, ensure_ascii=False).encode()
        self.headers = [("Content-Type", "application/json"), ("Content-Length", str(len(self.body)))]

    def __call__(self, environ, start_response):
        if (environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == "POST"
                and self.memory.anything()):
            course_id = self._course_id(environ)
            if course_id is not None and self.memory.knows(course_id):
                start_response("409 CONFLICT", list(self.headers))
                return [self.body]
        return self.wsgi_app(environ, start_response)

    @staticmethod
    def _course_id(environ):
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
        return course_id if type(course_id) is int else None
