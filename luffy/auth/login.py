"""Flask-Login wiring: how a session id becomes a User, and what "not logged in" answers."""

from flask import redirect, request, url_for

from luffy.errors import wants_json
from luffy.extensions import db, login_manager
from luffy.responses import refusal


def init_login(app):
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录"

    @login_manager.user_loader
    def load_user(user_id):
        from luffy.models import User

        if not user_id.isdigit():
            return None
        user = db.session.get(User, int(user_id))
        return user if user is not None and user.is_active else None

    @login_manager.unauthorized_handler
    def unauthorized():
        if wants_json():
            return refusal(401, "请先登录")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
