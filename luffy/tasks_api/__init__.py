"""Task status API: ``GET /api/v1/tasks/<task_id>/`` for ids the application issued."""

from flask import Blueprint

bp = Blueprint("tasks_api", __name__)

from luffy.tasks_api import views  # noqa: E402,F401  (registers the routes)
