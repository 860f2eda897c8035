"""``make run``'s supervisor (scripts/run_all.py): a child that dies comes back, Ctrl-C stops all.

The first tests drive the Supervisor class with small real processes; the last one runs
``scripts/run_all.py`` itself (its own persistent Redis, gunicorn, a worker and beat), kills
the worker and the Redis with SIGKILL, sees both come back while the site answers, then
stops everything with SIGINT (Ctrl-C) and checks no process of it is left.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from conftest import ROOT, RUNTIME
from live_servers import wait_until
from local_redis import free_port

from scripts.run_all import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def alive(pid):
    """True while the process, or any process of the group it led, still runs."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def supervisor():
    supervisor = Supervisor(startup_seconds=0.5)
    yield supervisor
    supervisor.stop_all()


def watch_in_background(supervisor):
    import threading

    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(status=supervisor.watch()))
    thread.start()
    return thread, outcome


def test_a_child_killed_with_sigkill_is_started_again(supervisor, capsys):
    first = supervisor.start("sleeper", SLEEPER, quiet=True)
    time.sleep(0.8)  # past its start-up window: from now on a death is a crash, not a failure
    thread, outcome = watch_in_background(supervisor)
    os.kill(first.pid, signal.SIGKILL)
    wait_until(
        lambda: supervisor.children["sleeper"].process.pid != first.pid,
        timeout=15,
        message="a new sleeper",
    )
    second = supervisor.children["sleeper"].process
    assert second.poll() is None and not alive(first.pid)
    supervisor.stopping.set()
    thread.join(timeout=10)
    assert outcome == {"status": 0}
    output = capsys.readouterr().out
    assert "sleeper exited with status -9" in output and "restarting it in 1 s" in output
    assert f"sleeper restarted (pid {second.pid})" in output


def test_the_pause_before_a_restart_doubles_while_a_child_keeps_dying(supervisor, capsys):
    supervisor.add(
        "crasher",
        lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.7)"]),
    )
    thread, outcome = watch_in_background(supervisor)
    wait_until(lambda: supervisor.children["crasher"].starts >= 3, timeout=30, message="restarts")
    supervisor.stopping.set()
    thread.join(timeout=10)
    output = capsys.readouterr().out
    assert "restarting it in 1 s" in output and "restarting it in 2 s" in output


def test_a_child_that_fails_to_start_stops_everything(supervisor, capsys):
    other = supervisor.start("sleeper", SLEEPER, quiet=True)
    supervisor.start("broken", [sys.executable, "-c", "raise SystemExit(3)"], quiet=True)
    assert supervisor.watch() == 1
    supervisor.stop_all()
    assert other.poll() is not None
    assert "broken failed to start (exit status 3); stopping the others." in capsys.readouterr().out


def started_pids(output, name):
    return [int(pid) for pid in re.findall(rf"{name} (?:started|restarted) \(pid (\d+)\)", output)]


def test_make_run_restarts_a_dead_worker_and_redis_and_ctrl_c_stops_everything(tmp_path):
    redis_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "LUFFY_ENV": "development",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run-all.db'}",
        "LOCAL_REDIS_DIR": str(tmp_path / "redis"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "WORKER_STATE_DB": "off",
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
    }
    log_path = RUNTIME["tmp"] / f"run-all-{web_port}.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "scripts/run_all.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    output = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        wait_until(lambda: "Luffy is running" in output(), timeout=120, message="make run")
        site = f"http://127.0.0.1:{web_port}/login"
        wait_until(lambda: answers_http(site), timeout=60, message="the site")
        wait_until(lambda: "celery@" in output() and " ready." in output(), timeout=60)
        (worker_pid,) = started_pids(output(), "worker")
        (redis_pid,) = started_pids(output(), "redis")
        time.sleep(10)  # past the start-up window: a death now is a crash to recover from

        os.kill(worker_pid, signal.SIGKILL)
        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: len(started_pids(output(), "worker")) == 2, timeout=60)
        wait_until(lambda: len(started_pids(output(), "redis")) == 2, timeout=60)
        assert "worker exited with status -9" in output()
        assert "redis exited with status -9" in output()
        assert answers_http(site) and run.poll() is None

        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 0, output()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    every = [
        pid for name in ("web", "worker", "beat", "redis") for pid in started_pids(output(), name)
    ]
    assert len(every) == 6, output()
    assert [pid for pid in every if alive(pid)] == [], output()
    assert "supervisor | Stopped." in output()
    # Its Redis kept the data in an append-only file, so the queue survived the kill.
    assert list((tmp_path / "redis").glob("appendonly*")), output()


@pytest.mark.parametrize("unit", sorted((ROOT / "deploy" / "systemd").glob("*.service")))
def test_every_systemd_unit_restarts_its_process(unit):
    import configparser

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(unit)
    assert parser.get("Service", "Restart", fallback=None) in ("always", "on-failure"), unit.name


def answers_http(url):
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False
