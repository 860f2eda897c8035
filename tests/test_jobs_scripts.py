"""Plain scripts (§ the seed tutorial): send a task in one, read its result in another."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEND = """
from tasks.user import add
result = add.delay(2, 3)
print(result.id)
print(add.app.conf.broker_url)
"""
READ = """
import sys
import tasks
from celery.result import AsyncResult
print(AsyncResult(sys.argv[1]).get(timeout=60))
"""


def run(code, *args, env=None):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_plain_script_round_trip_uses_the_configured_broker_and_backend(app, worker):
    sent = run(SEND)
    assert sent.returncode == 0, sent.stderr
    task_id, broker_url = sent.stdout.split()[-2:]
    assert broker_url == app.config["CELERY"]["broker_url"]
    read = run(READ, task_id)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip().splitlines()[-1] == "5"


def test_a_script_that_cannot_build_the_app_fails_at_once_saying_what_to_import():
    failed = run(SEND, env={"LUFFY_ENV": "nonsense"})
    assert failed.returncode != 0
    assert "from tasks.celery import app" in failed.stderr
    assert "LUFFY_ENV must be one of" in failed.stderr
