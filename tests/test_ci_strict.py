"""CI never goes green on a matrix or a browser suite that did not run.

``make test-prod`` against servers that do not answer: skipped with a clear line on a
developer's machine, a failure under ``CI=true``. The browser tests' Chromium check: a skip
outside CI, a failure (a collection error) under ``CI=true``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from local_redis import free_port


def make_test_prod(ci):
    venv = Path(sys.prefix)
    env = {
        **os.environ,
        "CI": "true" if ci else "",
        "TEST_PROD_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        "TEST_PROD_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//",
    }
    # -o: take the installed virtualenv as it is (no pip install from a test).
    return subprocess.run(
        ["make", "-s", "-o", f"{venv}/.dev-installed", f"VENV={venv}", "test-prod"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_test_prod_skips_outside_ci_saying_why():
    run = make_test_prod(ci=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "make test-prod SKIPPED: PostgreSQL at" in run.stdout
    assert "make test-prod SKIPPED: the broker at" in run.stdout
    assert "Production matrix" not in run.stdout


def test_make_test_prod_fails_under_ci_when_its_servers_do_not_answer():
    run = make_test_prod(ci=True)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "make test-prod FAILED (CI=true): PostgreSQL at" in run.stdout
    assert "Production matrix" not in run.stdout


@pytest.mark.parametrize("ci, outcome", [("", "1 skipped"), ("true", "1 error")])
def test_browser_tests_fail_under_ci_without_chromium(tmp_path, ci, outcome):
    probe = tmp_path / "test_needs_chromium.py"
    probe.write_text(
        "from browser_helpers import playwright_or_skip\n"
        "sync_api = playwright_or_skip()\n"
        "def test_page():\n    pass\n"
    )
    env = {**os.environ, "CI": ci, "LUFFY_TEST_CHROMIUM": str(tmp_path / "no-chromium")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
        + ["-c", str(ROOT / "pytest.ini"), f"--confcutdir={ROOT / 'tests'}", str(probe)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": f"{ROOT / 'tests'}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in run.stdout, run.stdout + run.stderr
    assert ("CI=true: browser tests skipped: no Chromium" in run.stdout) == bool(ci)
