"""Celery tasks by concern; ``celery -A tasks`` loads the worker app from ``tasks.celery``.

This package imports nothing at start, so the web app can import a task module to call
``.delay()`` without building a second Flask app.
"""
