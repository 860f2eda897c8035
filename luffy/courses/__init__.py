"""Courses for visitors: the course list and a course's page."""

from flask import Blueprint

bp = Blueprint("courses", __name__)

from luffy.courses import views  # noqa: E402,F401  (registers the routes)
