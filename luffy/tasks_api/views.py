"""Route of the task status API."""

from luffy.responses import ok
from luffy.tasks_api import bp
from luffy.tasks_api.services import task_status


@bp.get("/api/v1/tasks/<task_id>/")
def task_detail(task_id):
    return ok(**task_status(task_id))
