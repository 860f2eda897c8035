"""``make run``: Redis if needed, migrations, demo data, then web + worker + beat in the foreground.

A child that dies is started again after a pause that doubles with each quick death (1 s up
to 30 s), with a log line saying so; the site keeps running meanwhile. Everything stops only
on Ctrl-C (or SIGTERM), or when a child fails to start at all (it dies within
``STARTUP_SECONDS`` of its very first start: a port in use, a broken configuration).
Stopping sends SIGTERM to each child's process group, waits, then SIGKILLs what is left.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from local_redis import answers, local_redis_address, start_redis  # noqa: E402

from config import Config, web_server_settings  # noqa: E402

BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = 15
# A child that dies this soon after its first start failed to start: stop everything.
STARTUP_SECONDS = 10
FIRST_BACKOFF_SECONDS = 1
MAX_BACKOFF_SECONDS = 30
# A child that ran this long before dying restarts after the first, short pause again.
HEALTHY_SECONDS = 60


def say(message):
    print(f"supervisor | {message}", flush=True)


class Child:
    """One supervised process: how to start it, and its restart bookkeeping."""

    def __init__(self, name, start):
        self.name = name
        self._start = start  # () -> Popen
        self.process = None
        self.started_at = 0.0
        self.starts = 0
        self.backoff = FIRST_BACKOFF_SECONDS
        self.restart_at = None  # monotonic time of the next start, while it is down

    def start(self):
        self.process = self._start()
        self.started_at = time.monotonic()
        self.starts += 1
        self.restart_at = None

    def exited(self):
        return self.process is not None and self.process.poll() is not None


class Supervisor:
    def __init__(self, startup_seconds=STARTUP_SECONDS):
        self.children = {}  # name -> Child
        self.stopping = threading.Event()
        self.startup_seconds = startup_seconds

    def start(self, name, argv, quiet=False):
        """Start ``argv`` as the child ``name`` (its output relayed, prefixed with the name)."""

        def popen():
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we stop it and its children
            )
            relay(name, process, quiet)
            return process

        return self.add(name, popen)

    def add(self, name, start):
        """Supervise the process ``start()`` returns, started now."""
        child = Child(name, start)
        self.children[name] = child
        child.start()
        say(f"{name} started (pid {child.process.pid}).")
        return child.process

    def watch(self):
        """Restart children that die until asked to stop; 0 on Ctrl-C, 1 if one cannot start."""
        while not self.stopping.is_set():
            for child in self.children.values():
                if self.stopping.is_set():
                    break
                down = child.restart_at is None and child.exited()
                if down and not self._schedule_restart(child):
                    return 1
                if child.restart_at is not None and time.monotonic() >= child.restart_at:
                    self._restart(child)
            self.stopping.wait(0.2)
        return 0

    def _schedule_restart(self, child):
        status = child.process.returncode
        ran = time.monotonic() - child.started_at
        # What the dead process left behind (gunicorn's workers holding the port, a worker's
        # pool processes) goes with it, so the new one starts clean.
        signal_group(child.process, signal.SIGKILL)
        if child.starts == 1 and ran < self.startup_seconds:
            say(f"{child.name} failed to start (exit status {status}); stopping the others.")
            return False
        if ran >= HEALTHY_SECONDS:
            child.backoff = FIRST_BACKOFF_SECONDS
        say(
            f"{child.name} exited with status {status} after {ran:.0f} s; "
            f"restarting it in {child.backoff} s."
        )
        child.restart_at = time.monotonic() + child.backoff
        child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)
        return True

    def _restart(self, child):
        try:
            child.start()
        except (OSError, RuntimeError) as error:  # e.g. redis-server could not bind yet
            say(
                f"{child.name} could not be restarted ({error}); trying again in {child.backoff} s."
            )
            child.restart_at = time.monotonic() + child.backoff
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)
            return
        say(f"{child.name} restarted (pid {child.process.pid}).")

    def stop_all(self):
        self.stopping.set()
        processes = [c.process for c in self.children.values() if c.process is not None]
        for process in processes:
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            signal_group(process, signal.SIGKILL)  # whatever is left, children included
            process.wait()


def relay(name, process, quiet):
    """Copy the child's output to ours, each line prefixed with its name (or drop it)."""

    def copy():
        for line in iter(process.stdout.readline, b""):
            if not quiet:
                sys.stdout.write(f"{name:>10} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    threading.Thread(target=copy, daemon=True).start()


def signal_group(process, signum):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def flask(*args):
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, check=True)


def start_local_redis(supervisor, config):
    """A persistent redis-server for each local Redis URL nobody answers at."""
    started_ports = set()
    for url in (config.REDIS_URL, config.CELERY["broker_url"]):
        address = local_redis_address(url)
        if address and address[1] not in started_ports and not answers(*address):
            say(f"No Redis answers at {address[0]}:{address[1]}; starting one from the virtualenv.")

            def redis_server(port=address[1]):
                process = start_redis(port, config.LOCAL_REDIS_DIR, host="127.0.0.1", persist=True)
                relay("redis", process, quiet=True)  # read its output so it never blocks
                return process

            supervisor.add("redis", redis_server)
            started_ports.add(address[1])


def main():
    config = Config()
    supervisor = Supervisor()
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stopping.set())
    try:
        start_local_redis(supervisor, config)
        Path(config.INSTANCE_DIR).mkdir(parents=True, exist_ok=True)
        flask("db", "upgrade")
        flask("seed-demo")
        bind = web_server_settings()["bind"]
        supervisor.start("web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"])
        supervisor.start("worker", [str(BIN / "celery"), "-A", "tasks", "worker", "-l", "INFO"])
        supervisor.start("beat", [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO"])
        print(
            f"\nLuffy is running: http://{bind}/  (admin: http://{bind}/admin/)\n"
            "Log in as admin / admin123 (demo data; `flask --app wsgi create-admin NAME` "
            "makes your own).\nPress Ctrl-C to stop everything.\n",
            flush=True,
        )
        status = supervisor.watch()
    except (subprocess.CalledProcessError, RuntimeError) as error:
        say(f"Set-up step failed: {error}")
        status = 1
    finally:
        say("Stopping...")
        supervisor.stop_all()
        say("Stopped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
