"""Helpers that run Luffy's real entry points (gunicorn, celery worker, celery beat) as
processes."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class LiveProcess:
    """A subprocess in its own process group whose output goes to a log file."""

    def __init__(self, argv, log_path, env):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (the process writes to it until it stops)
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.process.pid

    def output(self):
        return self.log_path.read_text(errors="replace")

    def running(self):
        return self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def environment(**overrides):
    """The test session's environment (set by conftest) with ``overrides``; None removes a name."""
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def start_gunicorn(port, log_dir, env, workers=2, threads=4):
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on 127.0.0.1:``port``, once it answers HTTP."""
    env = {
        **env,
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": str(threads),
    }
    server = LiveProcess(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        Path(log_dir) / f"gunicorn-{uuid.uuid4().hex[:6]}.log",
        env,
    )
    server.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not server.running():
            raise RuntimeError(f"gunicorn exited:\n{server.output()}")
        try:
            requests.get(server.url + "/login", timeout=5)
            return server
        except requests.RequestException:  # not listening yet, or a worker still booting
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer:\n{server.output()}")


def start_celery(kind, log_dir, env, *args):
    """``celery -A tasks <kind> ...`` (worker or beat); the caller waits for what it needs."""
    return LiveProcess(
        [str(BIN / "celery"), "-A", "tasks", kind, "-l", "INFO", *args],
        Path(log_dir) / f"{kind}-{uuid.uuid4().hex[:6]}.log",
        env,
    )


def wait_until(predicate, timeout=30, interval=0.1, message="condition"):
    """Poll ``predicate`` until it returns a true value (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
