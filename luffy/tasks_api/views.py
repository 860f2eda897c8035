"""Route of the task status API."""

from flask import Blueprint, jsonify

from luffy.responses import SUCCESS
from luffy.tasks_api.services import task_status

bp = Blueprint("tasks_api", __name__)


@bp.get("/api/v1/tasks/<task_id>/")
def task_detail(task_id):
    # Not responses.ok(): its ``status`` argument is the HTTP status, and this answer has a
    # ``status`` field of its own (the job's status in RQ's words).
    return jsonify({"code": SUCCESS, "msg": "成功", **task_status(task_id)})
