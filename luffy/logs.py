"""Structured logs for production: one JSON object per line on stdout (web, worker, beat alike)."""

import json
import logging
import sys
from datetime import UTC, datetime

# gunicorn's access-log atoms worth a field of their own (glogging.Logger.atoms).
ACCESS_FIELDS = {
    "h": "remote",
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "a": "user_agent",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON that log shippers parse without a grok pattern.

    Always: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``pid``. Also, when they
    apply: the Flask request (``method``, ``path``), the running Celery task (``task``,
    ``task_id``), gunicorn's access-log fields, and ``exc`` (the traceback, still one line).
    """

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            for atom, field in ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value not in (None, "", "-"):
                    entry[field] = int(value) if field in ("status", "duration_ms") else value
        else:
            entry.update(_request_fields())
            entry.update(_task_fields())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def _request_fields():
    try:
        from flask import has_request_context, request
    except ImportError:  # pragma: no cover - Flask is a hard dependency
        return {}
    if not has_request_context():
        return {}
    return {"method": request.method, "path": request.path}


def _task_fields():
    from celery import current_task

    if not current_task or current_task.request.id is None:
        return {}
    return {"task": current_task.name, "task_id": current_task.request.id}


def log_json_to_stdout(level="INFO"):
    """Make the root logger write JSON lines to stdout, replacing any handler set before.

    Celery workers and beat would replace the root handlers with their own text format at
    start-up; answering Celery's ``setup_logging`` signal tells them to keep this one.
    """
    from celery.signals import setup_logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn() output becomes a JSON line too
    setup_logging.connect(_keep_json_logging, weak=False)


def _keep_json_logging(**kwargs):
    """Celery's ``setup_logging`` receiver: logging is already configured (JSON on stdout)."""


def gunicorn_logconfig(level="INFO"):
    """gunicorn's ``logconfig_dict``: its error and access logs as JSON lines on stdout too."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "luffy.logs.JsonFormatter"}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
