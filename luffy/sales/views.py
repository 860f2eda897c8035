"""Routes of the storefront's sale list and the sale status the sale page polls."""

from flask import Blueprint, render_template

from luffy.extensions import cache
from luffy.responses import ApiError, ok
from luffy.sales import queries

bp = Blueprint("sales", __name__)

MAX_ID = 2**31 - 1
# Every open sale page asks every 2 s: one answer per course per second, shared by all web
# processes through the cache, keeps a crowd of pages from becoming a database load.
STATUS_SECONDS = 1


@bp.get("/seckill/")
def sale_list():
    return render_template("sales/list.html", cards=queries.open_sales())


@cache.memoize(timeout=STATUS_SECONDS, cache_none=True)
def status_of(course_id):
    """The course's sale as the status route tells it, or None when it never had one."""
    found = queries.course_sale(course_id) or queries.latest_sale(course_id)
    return found.as_json() if found is not None else None


@bp.get("/api/v1/seckill/<int:course_id>/status/")
def sale_status(course_id):
    """Seats left and state of the course's sale, at most a second old, so an open sale page
    can follow a sell-out or the end without a reload."""
    status = status_of(course_id) if course_id <= MAX_ID else None
    if status is None:
        raise ApiError(404, "该课程没有秒杀活动")
    return ok("查询成功", **status)
