"""Routes that queue notifications; JSON in, the task id out."""

from flask import Blueprint, request
from flask_login import current_user, login_required

from luffy.notify.services import queue_email, queue_sms_code, valid_mobile
from luffy.responses import ApiError, ok

bp = Blueprint("notify", __name__)


def json_body():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "请求体必须是 JSON 对象")
    return data


@bp.post("/api/v1/user/email/")
@login_required
def queue_email_view():
    # An open mail endpoint is a spam relay: admins only.
    if not current_user.is_admin:
        raise ApiError(403, "只有管理员可以发送邮件")
    return ok("邮件已加入发送队列", task_id=queue_email(json_body()))


@bp.post("/api/v1/user/sms/")
@login_required
def queue_sms_view():
    mobile = valid_mobile(json_body())
    return ok("验证码已发送", task_id=queue_sms_code(mobile, request.remote_addr))
