"""``make run``: Redis if needed, migrations, demo data, then web + worker + beat in the foreground.

Ctrl-C (or SIGTERM) stops every process it started, process groups included, and waits for
them; if one process exits on its own, the others are stopped too.
"""

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

import contextlib

from local_redis import answers, local_redis_address, start_redis  # noqa: E402

from config import Config, web_server_settings  # noqa: E402

BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = 15


class Supervisor:
    def __init__(self):
        self.children = {}  # name -> Popen
        self.stopping = threading.Event()

    def start(self, name, argv, quiet=False):
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop it and its children
        )
        self.children[name] = process
        threading.Thread(target=self._relay, args=(name, process, quiet), daemon=True).start()
        return process

    def adopt(self, name, process):
        self.children[name] = process

    @staticmethod
    def _relay(name, process, quiet):
        for line in iter(process.stdout.readline, b""):
            if not quiet:
                sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    def wait_for_first_exit(self):
        while not self.stopping.is_set():
            for name, process in self.children.items():
                if process.poll() is not None:
                    print(f"\n{name} exited with status {process.returncode}; stopping the others.")
                    return 1
            time.sleep(0.2)
        return 0

    def stop_all(self):
        self.stopping.set()
        for process in self.children.values():
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.children.values():
            signal_group(process, signal.SIGKILL)  # whatever is left, children included
            process.wait()


def signal_group(process, signum):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def flask(*args):
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, check=True)


def main():
    config = Config()
    supervisor = Supervisor()
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stopping.set())
    try:
        started_ports = set()
        for url in (config.REDIS_URL, config.CELERY["broker_url"]):
            address = local_redis_address(url)
            if address and address[1] not in started_ports and not answers(*address):
                print(
                    f"No Redis answers at {address[0]}:{address[1]}; starting one from the virtualenv."
                )
                process = start_redis(address[1], ROOT / "instance" / "redis", host="127.0.0.1")
                supervisor.adopt("redis", process)
                started_ports.add(address[1])
        Path(config.INSTANCE_DIR).mkdir(parents=True, exist_ok=True)
        flask("db", "upgrade")
        flask("seed-demo")
        bind = web_server_settings()["bind"]
        supervisor.start("web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"])
        supervisor.start("worker", [str(BIN / "celery"), "-A", "tasks", "worker", "-l", "INFO"])
        supervisor.start("beat", [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "INFO"])
        print(
            f"\nLuffy is running: http://{bind}/  (admin: http://{bind}/admin/)\n"
            "Log in as admin / admin123 (demo data; `flask --app wsgi create-admin NAME` makes your own).\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        status = supervisor.wait_for_first_exit()
    except subprocess.CalledProcessError as error:
        print(f"Set-up step failed: {error}", file=sys.stderr)
        status = 1
    finally:
        print("Stopping...", flush=True)
        supervisor.stop_all()
    return status


if __name__ == "__main__":
    sys.exit(main())
