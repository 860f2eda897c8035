"""Task status API: ``GET /api/v1/tasks/<task_id>/`` for ids the application issued."""

from luffy.tasks_api.views import bp  # noqa: F401  (the blueprint, with its routes)
