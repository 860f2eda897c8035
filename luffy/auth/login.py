"""Flask-Login wiring: how a session id becomes a User, and what "not logged in" answers."""

import hmac

from flask import redirect, request, url_for

from luffy.errors import wants_json
from luffy.extensions import db, login_manager
from luffy.responses import refusal


def user_for_id(user_id):
    """The active user named by ``"<id>:<session_token>"`` (``User.get_id()``), or None.

    The token must match the row: a logout or a password change gives the user a new one,
    so every session and remember cookie holding the old id stops working at once. A bare
    id (a session from before tokens) is refused the same way.
    """
    from luffy.models import User

    number, _, token = (user_id or "").partition(":")
    if not number.isdigit() or len(number) > 18 or not token:
        return None
    user = db.session.get(User, int(number))
    if user is None or not user.is_active or not user.session_token:
        return None
    if not hmac.compare_digest(user.session_token.encode(), token.encode()):
        return None
    return user


def init_login(app):
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录"
    login_manager.user_loader(user_for_id)

    @login_manager.unauthorized_handler
    def unauthorized():
        if wants_json():
            return refusal(401, "请先登录")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
