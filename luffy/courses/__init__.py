"""Courses for visitors: the course list and a course's page."""

from luffy.courses.views import bp  # noqa: F401  (the blueprint, with its routes)
