"""Monitoring: the task dashboard in the admin (admin.py) and ``GET /metrics`` (exporter.py)."""

from flask import Blueprint

bp = Blueprint("monitoring", __name__)

from luffy.dashboard import (
    exporter,  # noqa: E402,F401  (registers /metrics)
    worker_state,  # noqa: E402,F401  (workers' revoke file folder)
)
