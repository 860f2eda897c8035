"""`make flower` (celery -A tasks flower, with flowerconfig.py) never runs without basic auth."""

import re
import subprocess

import requests
from conftest import ROOT
from live_servers import BIN, LiveProcess, environment, wait_until
from local_redis import free_port


def flower(log_dir, **env):
    port = free_port()
    process = LiveProcess(
        [str(BIN / "celery"), "-A", "tasks", "flower"],
        log_dir / f"flower-{port}.log",
        environment(FLOWER_PORT=port, FLOWER_BASIC_AUTH=None, **env),
    )
    process.url = f"http://127.0.0.1:{port}"
    return process


def test_flower_outside_development_refuses_to_start_without_basic_auth():
    result = subprocess.run(
        [str(BIN / "celery"), "-A", "tasks", "flower"],
        cwd=ROOT,
        env=environment(LUFFY_ENV="testing", FLOWER_BASIC_AUTH=None, FLOWER_PORT=free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Flower needs FLOWER_BASIC_AUTH" in result.stdout + result.stderr


def test_flower_in_development_prints_a_generated_login_and_requires_it(tmp_path):
    process = flower(tmp_path, LUFFY_ENV="development")
    try:
        login = wait_until(
            lambda: re.search(r"user (\S+), password (\S+)", process.output()),
            timeout=60,
            message="the generated login",
        )
        user, password = login.groups()
        wait_until(lambda: _answers(process.url), timeout=60, message=f"Flower\n{process.output()}")
        assert requests.get(process.url + "/workers", timeout=10).status_code == 401
        page = requests.get(process.url + "/workers", auth=(user, password), timeout=10)
        assert page.status_code == 200
        assert process.output().count(password) == 1  # printed once
    finally:
        process.stop()


def test_flower_uses_flower_basic_auth_when_set(tmp_path):
    port = free_port()
    process = LiveProcess(
        [str(BIN / "celery"), "-A", "tasks", "flower"],
        tmp_path / "flower-set.log",
        environment(FLOWER_PORT=port, FLOWER_BASIC_AUTH="ops:s3cret-pass"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=60, message=f"Flower\n{process.output()}")
        assert requests.get(url + "/workers", timeout=10).status_code == 401
        assert requests.get(url + "/workers", auth=("ops", "wrong"), timeout=10).status_code == 401
        ok = requests.get(url + "/workers", auth=("ops", "s3cret-pass"), timeout=10)
        assert ok.status_code == 200
    finally:
        process.stop()


def _answers(url):
    # /healthcheck answers without auth (Flower's own choice): docs/security.md closes it
    # at the proxy.
    try:
        return requests.get(url + "/healthcheck", timeout=2).status_code == 200
    except requests.RequestException:
        return False
