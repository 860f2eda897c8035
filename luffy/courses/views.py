"""Routes of the course list and the course page."""

from flask import Blueprint, abort, render_template

from luffy.courses import queries
from luffy.sales.queries import course_sale

bp = Blueprint("courses", __name__)


@bp.get("/courses/")
def course_list():
    return render_template("courses/list.html", courses=queries.all_courses())


@bp.get("/courses/<int:course_id>/")
def course_page(course_id):
    course = queries.course(course_id)
    if course is None:
        abort(404)
    return render_template("courses/detail.html", course=course, sale=course_sale(course.id))
