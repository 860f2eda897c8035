"""Turns every exception into the right status with a readable message, JSON or page."""

import logging

from flask import render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from luffy.responses import ApiError, refusal

log = logging.getLogger(__name__)

MESSAGES = {
    400: "请求参数错误",
    401: "请先登录",
    403: "没有权限",
    404: "资源不存在",
    405: "请求方法不允许",
    409: "请求冲突",
    413: "上传内容过大",
    429: "请求过于频繁，请稍后再试",
    500: "服务器内部错误",
    503: "服务暂时不可用，请稍后再试",
}


def wants_json():
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def answer(status, msg):
    if wants_json():
        return refusal(status, msg)
    return render_template("errors/error.html", status=status, msg=msg), status


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a body nested too deeply for the parser (``[[[[...``) is bad
    input like any malformed body (``get_json`` answers 400, or None when silent),
    not a RecursionError and a 500."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError as error:
            raise ValueError("JSON nested too deeply") from error


def init_app(app):
    app.json = BoundedJSONProvider(app)

    @app.errorhandler(ApiError)
    def handle_api_error(error):
        if wants_json():
            return refusal(error.status, error.msg, **error.fields)
        return answer(error.status, error.msg)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error):
        return answer(400, "表单已过期或缺少 CSRF 令牌，请刷新页面后重试")

    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def handle_out_of_range(error):
        # A value the database cannot hold (an admin list's ?page=10**20, a 30-digit filter
        # value): SQLite's driver raises OverflowError, PostgreSQL a DataError ("integer out
        # of range"). Bad input, whichever view passed it on: 400, not a 500.
        from luffy.extensions import db

        db.session.rollback()
        log.warning("Refused out-of-range input on %s %s: %s", request.method, request.path, error)
        return answer(400, "数值超出范围或格式不正确")

    @app.errorhandler(OperationalError)
    def handle_database_down(error):
        # The database refused or dropped the connection: a dependency is down, not a bug in
        # the request, so 503 (a retry may work); the traceback still goes to the log.
        from luffy.extensions import db

        db.session.rollback()
        log.exception("Database unavailable on %s %s", request.method, request.path)
        return answer(503, MESSAGES[503])

    @app.errorhandler(HTTPException)
    def handle_http_error(error):
        return answer(error.code, MESSAGES.get(error.code, error.name))

    @app.errorhandler(Exception)
    def handle_unexpected_error(error):
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return answer(500, MESSAGES[500])
