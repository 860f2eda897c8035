"""The baseline of bench/tasks.py: a bare Celery app, no Flask, with Luffy's Celery settings.

``celery -A bench.bare_celery worker`` finds ``app``. Only the task class (plain
``celery.Task``: no app context, no alert hooks, no delayed-run guard) and the result backend
(``BARE_RESULT_BACKEND``, Redis) differ from Luffy's worker.
"""

import os
import tempfile
from pathlib import Path

from celery import Celery

from config import celery_settings

settings = celery_settings(
    broker_url=os.environ["CELERY_BROKER_URL"],
    result_backend=os.environ["BARE_RESULT_BACKEND"],
    timezone="Asia/Shanghai",
    banner_refresh_seconds=60,
    instance_dir=Path(tempfile.gettempdir()),
)
settings.update(imports=[], beat_schedule={})

app = Celery("bare")
app.config_from_object(settings)


@app.task(name="bench.bare.noop", ignore_result=True)
def noop():
    """Does nothing: the cost measured is Celery's alone."""


@app.task(name="bench.bare.echo")
def echo(value):
    return value
