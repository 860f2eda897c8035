"""Celery bound to the Flask app: settings from ``app.config["CELERY"]``, tasks run in the app context."""

from celery import Celery, Task


class FlaskTask(Task):
    """Runs every task inside the Flask application context of the app that made the Celery app."""

    abstract = True

    def __call__(self, *args, **kwargs):
        with self.app.flask_app.app_context():
            return super().__call__(*args, **kwargs)


def celery_init_app(app):
    """Create the Celery app for ``app``, make it the default for ``shared_task``, and return it."""
    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.flask_app = app
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
