"""Celery tasks by concern; ``celery -A tasks`` loads the worker app from ``tasks.celery``.

A plain script run from the project root (``from tasks.user import add; add.delay(2, 3)``)
talks to the configured broker and result backend (config.py, ``.env``), never to Celery's
default ``amqp://guest@localhost``: when no Celery app is set up yet, importing this package
builds the application the way a worker does (``tasks.celery``). The web app has built its
own by the time it imports a task module, so nothing is built twice there.
"""

from celery import _state

if _state.default_app is None:
    try:
        from tasks import celery as _entry  # noqa: F401  (sets the configured app as default)
    except Exception as error:
        raise ImportError(
            "Luffy's Celery app could not be built for this script, so tasks would go to "
            "Celery's default broker. Run the script from the project root with the same "
            ".env or environment as the app, and import the app first: "
            "`from tasks.celery import app` (then `AsyncResult(task_id, app=app)`). "
            f"The error was: {type(error).__name__}: {error}"
        ) from error
