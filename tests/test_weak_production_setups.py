"""Production refuses weak setups: example or short secret keys, demo data (run as the real
entry points, in subprocesses: production logging rewires the root logger)."""

import subprocess
import sys

import pytest
from conftest import ROOT
from live_servers import BIN, environment
from local_redis import free_port

STRONG_KEY = "k" * 20 + "-a-strong-enough-secret"


def example_key_from_env_file():
    for line in (ROOT / "deploy" / "luffy.env.example").read_text().splitlines():
        if line.startswith("SECRET_KEY="):
            return line.partition("=")[2]
    raise AssertionError("deploy/luffy.env.example has no SECRET_KEY line")


def build_app(secret):
    return subprocess.run(
        [sys.executable, "-c", "from luffy import create_app; create_app()"],
        cwd=ROOT,
        env=environment(LUFFY_ENV="production", SECRET_KEY=secret),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "secret, message",
    [
        ("change-me", "not the example"),
        (example_key_from_env_file(), "not the example"),
        ("dev-only-secret-key-change-me", "needs SECRET_KEY"),
        ("a", "at least 32 characters"),
        ("x" * 31, "at least 32 characters"),
    ],
)
def test_production_refuses_an_example_or_short_secret_key(secret, message):
    result = build_app(secret)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_a_strong_key():
    result = build_app(STRONG_KEY)
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_a_weak_key_at_once():
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environment(
            LUFFY_ENV="production", SECRET_KEY="change-me", WEB_BIND=f"127.0.0.1:{free_port()}"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "not the example" in result.stdout + result.stderr


def test_seed_demo_refuses_to_run_in_production(app):
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "seed-demo"],
        cwd=ROOT,
        env=environment(LUFFY_ENV="production", SECRET_KEY=STRONG_KEY),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "seed-demo refuses to run with LUFFY_ENV=production" in result.stderr
    from luffy.extensions import db
    from luffy.models import User

    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(User.id))) == 0


def test_seed_demo_still_works_in_development(app, runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "admin / admin123" in result.output
