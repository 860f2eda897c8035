"""Routes of the auth feature."""

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from luffy.auth.forms import LoginForm
from luffy.auth.services import LoginRefused, authenticate
from luffy.auth.throttle import get_throttle
from luffy.extensions import db

bp = Blueprint("auth", __name__)


def safe_next_url(target, default=None):
    """Only same-site relative paths: never an open redirect. Browsers read a backslash as a
    slash, so "/\\evil.example" would leave the site like "//evil.example"."""
    default = default or url_for("home.index")
    if (
        not target
        or urlsplit(target).netloc
        or urlsplit(target).scheme
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 32 for char in target)
    ):
        return default
    return target


def landing_url(user):
    """Where a login goes without a ``next``: the admin for admins, else the home page."""
    return url_for("admin.index") if user.is_admin else url_for("home.index")


def forget_csrf_token():
    """A new CSRF token after a login or logout: one seen before it is no use after."""
    session.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    g.pop("csrf_token", None)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(safe_next_url(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        username, address = form.username.data.strip(), request.remote_addr
        throttle = get_throttle(current_app)
        wait = throttle.retry_after(username, address)
        if wait:
            minutes = max(1, round(wait / 60))
            form.password.errors.append(f"登录失败次数过多，请 {minutes} 分钟后再试")
            response = render_template("auth/login.html", form=form)
            return response, 429, {"Retry-After": str(wait)}
        try:
            user = authenticate(username, form.password.data)
        except LoginRefused as refused:
            form.password.errors.append(str(refused))
            return render_template("auth/login.html", form=form), 403
        if user is None:
            throttle.failed(username, address)
            form.password.errors.append("用户名或密码错误")
        else:
            throttle.succeeded(username)
            login_user(user, remember=form.remember.data)
            forget_csrf_token()
            return redirect(safe_next_url(request.args.get("next"), landing_url(user)))
    status = 400 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    # A new session token ends the current session and every other one of the user: a copied
    # cookie or a remember-me cookie on another machine stops working too.
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    forget_csrf_token()
    flash("已退出登录")
    return redirect(url_for("home.index"))
