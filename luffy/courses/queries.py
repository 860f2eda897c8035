"""Course reads for the storefront."""

from sqlalchemy import select

from luffy.extensions import db
from luffy.models import Course

MAX_ID = 2**31 - 1


def all_courses(limit=None):
    """Every course, the oldest first (the order they were put on the site)."""
    query = select(Course).order_by(Course.id)
    if limit:
        query = query.limit(limit)
    return db.session.scalars(query).all()


def course(course_id):
    """The course with ``course_id``, or None (an id too large for the column included)."""
    return db.session.get(Course, course_id) if 0 < course_id <= MAX_ID else None
