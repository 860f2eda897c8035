"""Flower started with ``celery -A tasks flower`` against the test broker lists the worker."""

import os
import subprocess
import time

import requests
from conftest import BIN, ROOT, RUNTIME, rabbitmq_url, restore_celery, start_worker, stop_worker

USER, PASSWORD = "ops", "flower-test-password"


def start_flower(port, env=None):
    log_path = RUNTIME["tmp"] / f"flower-{port}.log"
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--basic-auth={USER}:{PASSWORD}",
        ],
        cwd=ROOT,
        stdout=open(log_path, "wb"),  # noqa: SIM115 (the process writes to it until it stops)
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    process.log_path = log_path
    return process


def stop(process):
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def wait_for_worker_in_flower(flower, base, hostname, timeout=60):
    """Flower's worker list (its API, behind basic auth) once it names ``hostname``."""
    deadline = time.monotonic() + timeout
    listed = None
    while time.monotonic() < deadline:
        assert flower.poll() is None, flower.log_path.read_text(errors="replace")
        try:
            response = requests.get(
                f"{base}/api/workers", params={"refresh": "1"}, auth=(USER, PASSWORD), timeout=10
            )
            if response.status_code == 200:
                listed = response.json()
                if hostname in listed:
                    return listed
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"Flower never listed {hostname}: {listed}\n"
        + flower.log_path.read_text(errors="replace")[-3000:]
    )


def wait_for_task_in_flower(base, task_id, timeout=30):
    """Flower's record of one task, which it only has from the worker's task events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(
            f"{base}/api/task/info/{task_id}", auth=(USER, PASSWORD), timeout=10
        )
        if response.status_code == 200 and response.json().get("state") == "SUCCESS":
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"Flower saw no events of task {task_id}")


def check_flower(port, hostname, env=None, celery_app=None):
    flower = start_flower(port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        listed = wait_for_worker_in_flower(flower, base, hostname)
        if celery_app is not None:
            result = celery_app.send_task("tasks.home.update_banner")
            result.get(timeout=30)
            info = wait_for_task_in_flower(base, result.id)
            assert info["worker"] == hostname and info["name"] == "tasks.home.update_banner"
        assert listed[hostname].get("stats", {}).get("pool")
        assert requests.get(f"{base}/api/workers", timeout=10).status_code == 401
        assert requests.get(f"{base}/", timeout=10).status_code == 401
        page = requests.get(f"{base}/workers", auth=(USER, PASSWORD), timeout=10)
        assert page.status_code == 200
    finally:
        stop(flower)


def test_flower_lists_the_worker_and_sees_task_events(app, worker):
    from local_redis import free_port

    check_flower(free_port(), worker.hostname, celery_app=app.extensions["celery"])


def test_flower_on_rabbitmq_lists_the_worker(app, monkeypatch):
    """The same against RabbitMQ; the worker only consumes a queue of its own."""
    import uuid

    from local_redis import free_port

    from config import TestingConfig
    from luffy import create_app

    url = rabbitmq_url()
    # Celery prefers the CELERY_BROKER_URL variable to any broker given in code.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    rabbit = create_app(TestingConfig)
    try:
        process = start_worker(
            rabbit,
            "-c",
            "1",
            "-Q",
            f"luffy-test-{uuid.uuid4().hex[:8]}",
            name=f"flower-{uuid.uuid4().hex[:6]}@%h",
        )
        try:
            check_flower(free_port(), process.hostname)
        finally:
            stop_worker(process)
    finally:
        restore_celery(app)
