"""The admin's access rule in one place: every admin view derives from these bases."""

from flask import redirect, request, url_for
from flask_admin import AdminIndexView, BaseView
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import Forbidden


def is_admin_user():
    return current_user.is_authenticated and current_user.is_active and current_user.is_admin


def refuse_access():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    raise Forbidden()


class SecureAdminIndexView(AdminIndexView):
    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        return refuse_access()


class AdminForm(FlaskForm):
    """Flask-WTF's form (CSRF) that remembers the edited row, as Flask-Admin's own form does,
    so Flask-Admin's Unique validator does not refuse saving a row under its own name."""

    def __init__(self, *args, **kwargs):
        self._obj = kwargs.get("obj")
        super().__init__(*args, **kwargs)


class SecureModelView(ModelView):
    """Admin-only model view with Flask-WTF CSRF on every form."""

    form_base_class = AdminForm
    page_size = 50
    can_view_details = True

    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        return refuse_access()


class SecureBaseView(BaseView):
    """Admin-only page that is not a model list (the monitoring dashboard)."""

    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        return refuse_access()
