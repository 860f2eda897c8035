"""Routes of the flash sale: the page, the buy request and the result poll."""

import re
import time
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user, login_required

from luffy.extensions import csrf, db
from luffy.metrics import count
from luffy.models import Course
from luffy.models.base import as_utc
from luffy.responses import ApiError, ok
from luffy.seckill import admission, fast_path, sales, scripts

bp = Blueprint("seckill", __name__)
BUY_PATH = "/api/v1/user/seckill/seckill/"


@bp.record_once
def _init(state):
    scripts.init_app(state.app)
    admission.init_app(state.app)
    fast_path.init_app(
        state.app,
        state.app.extensions["luffy_seckill_sold_out"],
        BUY_PATH,
        admission.REFUSALS["sold_out"][1],
    )


TICKET = re.compile(r"^[0-9a-f]{32}$")
MAX_ID = 2**31 - 1


def buyer_id():
    """The logged-in user's id, through Flask-Login (its user loader decides), or None."""
    return current_user.id if current_user.is_authenticated else None


def local_text(moment):
    """``moment`` in the site's time zone (TIMEZONE), as shown to buyers."""
    return (
        as_utc(moment)
        .astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
        .strftime("%Y-%m-%d %H:%M")
    )


def course_id_from(body):
    if not isinstance(body, dict) or "course_id" not in body:
        raise ApiError(400, "缺少 course_id")
    value = body["course_id"]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ApiError(400, "course_id 必须是正整数")
    if isinstance(value, str):
        if not value.strip().isdigit() or len(value.strip()) > 10:
            raise ApiError(400, "course_id 必须是正整数")
        value = int(value.strip())
    if not 0 < value <= MAX_ID:
        raise ApiError(400, "course_id 必须是正整数")
    return value


@bp.get("/seckill/<int:course_id>/")
@login_required
def sale_page(course_id):
    course = db.session.get(Course, course_id) if course_id <= MAX_ID else None
    if course is None:
        abort(404)
    sale = sales.sale_for_course(course_id)
    context = {"course": course, "sale": sale}
    if sale is not None:
        context.update(
            start_ms=int(as_utc(sale.start_at).timestamp() * 1000),
            end_ms=int(as_utc(sale.end_at).timestamp() * 1000),
            stock=sales.stock_left(sale),
            ticket=sales.ticket_of(sale, current_user.id),
            phase=sale.phase(),
            now_ms=int(time.time() * 1000),
            start_text=local_text(sale.start_at),
            end_text=local_text(sale.end_at),
        )
    return render_template("seckill/sale.html", **context)


@bp.post(BUY_PATH)
@csrf.exempt  # checked below, once a cheap "sold out" is ruled out (it changes nothing)
def buy():
    user_id = buyer_id()
    if user_id is None:
        raise ApiError(401, "请先登录")
    course_id = course_id_from(request.get_json(silent=True))
    if admission.sold_out_memory().knows(course_id):
        count("seckill_refusals", {"reason": "sold_out"})
        raise ApiError(*admission.REFUSALS["sold_out"])
    csrf.protect()
    ticket = admission.admit(user_id, course_id, request.remote_addr or "-")
    return ok("您正在排队", task_id=ticket)


@bp.get("/api/v1/user/seckill/get_result/")
def result():
    user_id = buyer_id()
    if user_id is None:
        raise ApiError(401, "请先登录")
    ticket = request.args.get("task_id", "").strip()
    if not ticket:
        raise ApiError(400, "缺少 task_id")
    answer = admission.read_result(ticket, user_id) if TICKET.match(ticket) else None
    if answer is None:
        raise ApiError(404, "没有这个抢购记录")
    state, msg = answer
    return ok(msg or "查询成功", success=state)
