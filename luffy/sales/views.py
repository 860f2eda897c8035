"""Routes of the storefront's sale list and the sale status the sale page polls."""

from flask import render_template

from luffy.responses import ApiError, ok
from luffy.sales import bp, queries

MAX_ID = 2**31 - 1


@bp.get("/seckill/")
def sale_list():
    return render_template("sales/list.html", cards=queries.open_sales())


@bp.get("/api/v1/seckill/<int:course_id>/status/")
def sale_status(course_id):
    """Seats left and state of the course's sale: one database row and one Redis read, so an
    open sale page can ask every few seconds and follow a sell-out without a reload."""
    found = None
    if course_id <= MAX_ID:
        found = queries.course_sale(course_id) or queries.latest_sale(course_id)
    if found is None:
        raise ApiError(404, "该课程没有秒杀活动")
    return ok("查询成功", **found.as_json())
