"""The worker's entry module: builds the Flask app once and exposes its Celery app as ``app``.

``celery -A tasks worker|beat|flower|result|call|inspect`` finds ``tasks.celery.app``. Only
Celery processes import this module; the web side gets its Celery app from ``create_app``.
"""

from luffy import create_app

flask_app = create_app()
app = flask_app.extensions["celery"]
# The task modules (the ``imports`` setting): the worker loads them itself, but other commands
# (``celery -A tasks result -t tasks.user.add <id>``) need the tasks registered too.
app.loader.import_default_modules()
