"""Admin view of user accounts."""

from wtforms import PasswordField
from wtforms.validators import Length, Optional, Regexp

from luffy.admin.security import SecureModelView


class UserView(SecureModelView):
    column_list = ("id", "username", "email", "mobile", "is_admin", "is_active", "created_at")
    column_exclude_list = ("password_hash",)
    column_details_exclude_list = ("password_hash",)
    column_searchable_list = ("username", "email", "mobile")
    column_filters = ("is_admin", "is_active")
    column_labels = {
        "username": "用户名",
        "email": "邮箱",
        "mobile": "手机号",
        "is_admin": "管理员",
        "is_active": "启用",
        "created_at": "注册时间",
        "password": "密码",
    }
    form_columns = ("username", "email", "mobile", "password", "is_admin", "is_active")
    form_extra_fields = {
        "password": PasswordField(
            "密码",
            validators=[Optional(), Length(min=8, max=128)],
            description="新建用户必填；编辑时留空表示不修改",
        )
    }
    form_args = {
        "email": {
            "validators": [
                Optional(),
                Length(max=120),
                Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="邮箱格式不正确"),
            ]
        },
        "mobile": {
            "validators": [Optional(), Regexp(r"^1[3-9]\d{9}$", message="手机号格式不正确")]
        },
    }

    def validate_form(self, form):
        if not super().validate_form(form):
            return False
        if (
            hasattr(form, "password")
            and getattr(form, "_is_create", False)
            and not form.password.data
        ):
            form.password.errors.append("新建用户必须设置密码")
            return False
        return True

    def create_form(self, obj=None):
        form = super().create_form(obj)
        form._is_create = True
        return form

    def on_model_change(self, form, model, is_created):
        if form.password.data:
            model.set_password(form.password.data)
        for column in ("email", "mobile"):
            if getattr(model, column) == "":
                setattr(model, column, None)  # empty means none: keeps UNIQUE from clashing
        super().on_model_change(form, model, is_created)


def add_views(admin):
    from luffy.extensions import db
    from luffy.models import User

    admin.add_view(UserView(User, db.session, name="用户", endpoint="user"))
