"""The one JSON envelope, ``{"code": 100, "msg": ..., ...}``, and the error it carries."""

from flask import jsonify

SUCCESS = 100

# Refusal codes by HTTP status; the envelope's ``code`` is never 100 on a refusal.
CODE_FOR_STATUS = {
    400: 101,
    401: 102,
    403: 103,
    404: 104,
    405: 105,
    409: 109,
    413: 113,
    429: 129,
    500: 150,
    503: 153,
}


def ok(msg="成功", status=200, **fields):
    """A success answer in the envelope."""
    return jsonify({"code": SUCCESS, "msg": msg, **fields}), status


def refusal(status, msg, **fields):
    """A refusal answer in the envelope, with the fitting HTTP status."""
    code = CODE_FOR_STATUS.get(status, 150)
    return jsonify({"code": code, "msg": msg, **fields}), status


class ApiError(Exception):
    """Raise from a view or service to answer with a refusal."""

    def __init__(self, status, msg, **fields):
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.fields = fields
