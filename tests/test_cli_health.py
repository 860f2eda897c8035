"""CLI commands and /healthz."""

from sqlalchemy import func, select

from luffy.extensions import db
from luffy.models import Banner, Course, User


def counts(app):
    with app.app_context():
        return [
            db.session.scalar(select(func.count()).select_from(m)) for m in (User, Course, Banner)
        ]


def test_seed_demo_is_idempotent(app, runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "Added" in first.output
    after_first = counts(app)
    assert all(after_first)
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0
    assert "nothing to do" in second.output
    assert counts(app) == after_first


def test_seeded_banners_are_served(app, runner, client):
    runner.invoke(args=["seed-demo"])
    results = client.get("/api/v1/home/banners/").get_json()["results"]
    assert results and all(client.get(b["image"]).status_code == 200 for b in results)


def test_create_admin(app, runner):
    result = runner.invoke(args=["create-admin", "boss", "--password", "boss-password-1"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "boss"))
        assert user.is_admin and user.check_password("boss-password-1")


def test_create_admin_refuses_a_short_password(app, runner):
    result = runner.invoke(args=["create-admin", "boss", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 8" in result.output


def test_healthz_reports_every_service(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()["services"]) == {"database", "redis", "broker"}


def test_create_admin_refuses_an_email_of_another_user(app, runner, users):
    result = runner.invoke(
        args=[
            "create-admin",
            "boss",
            "--email",
            "root@example.com",
            "--password",
            "boss-password-1",
        ]
    )
    assert result.exit_code != 0
    assert "already used" in result.output


def test_web_app_does_not_import_the_worker_entry_module(app, client):
    """Calling .delay() from the web must not build a second Flask app (tasks/celery.py)."""
    import subprocess
    import sys

    code = (
        "import sys; from luffy import create_app; app = create_app(); "
        "import tasks.home; c = app.test_client(); c.get('/'); "
        "print('tasks.celery' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
