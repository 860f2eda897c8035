"""Monitoring: the task dashboard in the admin (admin.py) and ``GET /metrics`` (exporter.py)."""

from luffy.dashboard import worker_state  # noqa: F401  (workers' revoke file folder)
from luffy.dashboard.exporter import bp  # noqa: F401  (the blueprint: /metrics)
