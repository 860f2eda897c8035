"""The worker's entry module: builds the Flask app once and exposes its Celery app as ``app``.

``celery -A tasks worker|beat|flower`` finds ``tasks.celery.app``. Only Celery processes
import this module; the web side gets its Celery app from ``create_app``.
"""

from luffy import create_app

flask_app = create_app()
app = flask_app.extensions["celery"]
