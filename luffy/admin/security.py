"""The admin's access rule in one place: every admin view derives from these bases."""

from datetime import datetime

from flask import flash, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.helpers import get_redirect_target
from flask_admin.model import typefmt
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import inspect
from werkzeug.exceptions import Forbidden
from wtforms import DateTimeField
from wtforms.validators import ValidationError

from luffy.admin.times import (
    LocalTimeFilterConverter,
    NoSuchLocalTime,
    datetime_formatter,
    describe_zone,
    from_local,
    to_local,
)
from luffy.admin.words import AdminWords


def is_admin_user():
    return current_user.is_authenticated and current_user.is_active and current_user.is_admin


def refuse_access():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    raise Forbidden()


class SecureAdminIndexView(AdminWords, AdminIndexView):
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


class SecureModelView(AdminWords, ModelView):
    """Admin-only model view with Flask-WTF CSRF on every form, and times in the site's zone:
    lists, details, forms and filters all speak TIMEZONE; the database keeps UTC."""

    form_base_class = AdminForm
    page_size = 50
    can_view_details = True
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: datetime_formatter}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: datetime_formatter}
    filter_converter = LocalTimeFilterConverter()

    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        return refuse_access()

    # PostgreSQL refuses to compare an integer key with "abc", 2**40 or a NUL byte where
    # SQLite just finds nothing: an id that cannot be a key is "no such row", never a 500.
    def is_possible_key(self, value):
        if not isinstance(value, str) or not value or "\x00" in value:
            return False
        columns = self.model.__mapper__.primary_key
        if len(columns) == 1 and columns[0].type.python_type is int:
            column = columns[0]
            limit = 2**63 - 1 if column.type.__visit_name__ == "big_integer" else 2**31 - 1
            return value.isascii() and value.isdigit() and int(value) <= limit
        return True

    def get_one(self, id):
        return super().get_one(id) if self.is_possible_key(id) else None

    def _time_fields(self, form):
        """Date-time fields that are columns (an extra field converts its own value)."""
        return [
            field
            for field in form
            if isinstance(field, DateTimeField) and field.name in self.model.__table__.columns
        ]

    def create_form(self, obj=None):
        return self._describe_times(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._describe_times(super().edit_form(obj))

    def _describe_times(self, form):
        for field in self._time_fields(form):
            field.description = describe_zone()
        return form

    def on_form_prefill(self, form, id):
        for field in self._time_fields(form):
            field.data = to_local(field.data)
        super().on_form_prefill(form, id)

    def on_model_change(self, form, model, is_created):
        for field in self._time_fields(form):
            typed = getattr(model, field.name)
            history = inspect(model).attrs[field.name].history
            before = history.deleted[0] if history.deleted else None
            if typed is not None and before is not None and to_local(before) == typed:
                # Unchanged: keep the stored moment (in the hour repeated in autumn, the typed
                # wall-clock time alone cannot say which of the two it was).
                setattr(model, field.name, before)
                continue
            try:
                setattr(model, field.name, from_local(typed))
            except NoSuchLocalTime as error:
                raise ValidationError(f"{field.label.text}：{error}") from error
        super().on_model_change(form, model, is_created)

    def handle_action(self, return_view=None):
        if not all(self.is_possible_key(value) for value in request.form.getlist("rowid")):
            flash("无效的记录 ID", "error")
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return super().handle_action(return_view)


class SecureBaseView(AdminWords, BaseView):
    """Admin-only page that is not a model list (the monitoring dashboard)."""

    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        return refuse_access()
