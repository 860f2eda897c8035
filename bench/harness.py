"""Shared benchmark plumbing: private Redis, a seeded database, gunicorn servers and wrk runs.

Every figure is a ratio against a baseline measured in the same run under the same gunicorn
command line, median of several wrk runs after a warm-up (docs/benchmarks.md says how).
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from local_redis import free_port, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
WRK_ARGS = ["-t2", "-c32"]


def require_wrk():
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit(
            "bench needs wrk: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`."
        )
    return wrk


class Environment:
    """A private Redis and a temporary SQLite database, exported as the app's env vars."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="luffy-bench-"))
        self.redis_port = free_port()
        self.redis = start_redis(self.redis_port, self.tmp / "redis")
        self.env = {
            **os.environ,
            "LUFFY_ENV": "development",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.db'}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "UPLOAD_DIR": str(self.tmp / "uploads"),
        }
        os.environ.update(self.env)
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def close(self):
        self.redis.terminate()
        self.redis.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py <app>`` on a free port, the same command line for every app.

    ``--max-requests 0``: no worker is recycled (WEB_MAX_REQUESTS) in the middle of a run.
    """

    def __init__(self, app_path, env, workers=2, threads=8):
        self.port = free_port()
        self.env = {
            **env,
            "WEB_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "WEB_THREADS": str(threads),
        }
        self.process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                "--access-logfile",
                "/dev/null",
                "--max-requests",
                "0",
                app_path,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn on {self.url} did not answer {path}")

    def stop(self):
        if self.process.poll() is not None:  # stopped already
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def wrk_requests_per_second(url, seconds):
    output = subprocess.run(
        [require_wrk(), *WRK_ARGS, f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers during the run")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def measure(url, repetitions=3, seconds=5, warmup=2):
    """Median requests/s of ``repetitions`` wrk runs after a warm-up."""
    wrk_requests_per_second(url, warmup)
    return statistics.median(wrk_requests_per_second(url, seconds) for _ in range(repetitions))


def measure_interleaved(urls, repetitions=5, seconds=5, warmup=2):
    """Median requests/s per url, its runs taken in turn with the others' (a b c a b c ...).

    On a shared machine the speed drifts over a minute; taking the servers in turn puts the
    same drift into every figure, so their ratios hold still where back-to-back blocks swing.
    """
    for url in urls:
        wrk_requests_per_second(url, warmup)
    runs = {url: [] for url in urls}
    for _ in range(repetitions):
        for url in urls:
            runs[url].append(wrk_requests_per_second(url, seconds))
    return {url: statistics.median(values) for url, values in runs.items()}


def port_is_free(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
