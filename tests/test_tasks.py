"""The three ways to run a task, the status route, the results table, its cleanup and admin."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import csrf_token_from
from sqlalchemy import event, func, select

from luffy.extensions import db
from luffy.models import TaskResult


def row_of(app, task_id):
    with app.app_context():
        row = db.session.scalar(select(TaskResult).where(TaskResult.task_id == task_id))
        db.session.expunge_all()
        return row


def wait_for_row(app, task_id, states=("SUCCESS",), timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = row_of(app, task_id)
        if row is not None and row.state in states:
            return row
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not in {states}: {row_of(app, task_id)!r}")


def status(client, task_id):
    return client.get(f"/api/v1/tasks/{task_id}/")


def aware(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the three ways ------------------------------------------------------------------
def test_right_away_with_delay(app, worker):
    from tasks.user import add

    assert add.delay(2, 3).get(timeout=30) == 5


def test_delayed_with_countdown(app, worker):
    from tasks.user import add

    queued_at = datetime.now(UTC)
    result = add.apply_async((1, 1), countdown=3)
    assert result.get(timeout=30) == 2
    row = row_of(app, result.id)
    assert aware(row.started_at) >= queued_at + timedelta(seconds=2.9)


def test_delayed_with_an_eta_in_the_configured_time_zone(app, worker):
    from tasks.user import add

    assert app.extensions["celery"].conf.timezone == "Asia/Shanghai"
    eta = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=3)
    result = add.apply_async((20, 22), eta=eta)
    time.sleep(1)
    assert result.state == "PENDING"  # queued, not run yet
    assert result.get(timeout=30) == 42
    assert aware(row_of(app, result.id).started_at) >= eta - timedelta(seconds=0.1)


def test_periodic_from_the_beat_schedule(app, worker, tmp_path):
    """A real `celery beat` sends the config's beat_schedule entry; the worker runs it."""
    import os
    import subprocess

    from conftest import BIN, ROOT

    log_path = tmp_path / "beat.log"
    with open(log_path, "wb") as log_file:
        beat = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "tasks",
                "beat",
                "-l",
                "INFO",
                "-S",
                "celery.beat:PersistentScheduler",
                "-s",
                str(tmp_path / "schedule"),
            ],
            cwd=ROOT,
            env={**os.environ, "BANNER_REFRESH_SECONDS": "1"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        runs = 0
        while time.monotonic() < deadline and runs < 2:
            with app.app_context():
                runs = db.session.scalar(
                    select(func.count())
                    .select_from(TaskResult)
                    .where(
                        TaskResult.task_name == "tasks.home.update_banner",
                        TaskResult.state == "SUCCESS",
                    )
                )
            time.sleep(0.2)
        assert runs >= 2, log_path.read_text(errors="replace")
    finally:
        beat.terminate()
        beat.wait(timeout=20)


# -- the status route ----------------------------------------------------------------
def test_status_of_a_known_task(app, client, worker):
    from tasks.user import add

    result = add.delay(4, 5)
    result.get(timeout=30)
    body = status(client, result.id).get_json()
    assert body == {
        "code": 100,
        "msg": "成功",
        "task_id": result.id,
        "state": "SUCCESS",
        "status": "finished",
        "progress": None,
        "result": 9,
    }


def test_status_of_a_queued_task_is_pending_not_unknown(app, client):
    from tasks.user import add

    result = add.apply_async((1, 2), countdown=3600)  # no worker needed: it is only queued
    response = status(client, result.id)
    assert response.status_code == 200
    assert response.get_json()["state"] == "PENDING"
    result.revoke()


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "x" * 300, "不存在", "..%2f..%2fetc"])
def test_status_of_an_id_never_issued_is_404(app, client, task_id):
    response = status(client, task_id)
    assert response.status_code == 404
    assert response.get_json()["code"] == 104


def test_status_of_a_failed_task(app, client, worker):
    result = app.extensions["celery"].send_task("tests.fails", args=["status"])
    wait_for_row(app, result.id, states=("FAILURE",))
    body = status(client, result.id).get_json()
    assert body["state"] == "FAILURE"
    assert body["result"] == "RuntimeError: boom status"
    assert "Traceback" not in json.dumps(body)  # the public route never shows a traceback


def test_status_survives_the_loss_of_the_issued_key(app, client, worker, redis_client):
    from tasks.user import add

    result = add.delay(1, 1)
    result.get(timeout=30)
    redis_client.delete(f"luffy:job:{result.id}")
    assert status(client, result.id).get_json()["state"] == "SUCCESS"  # the row vouches


# -- the results table ---------------------------------------------------------------
def test_result_row_has_name_args_worker_and_times(app, worker):
    from tasks.user import add

    result = add.apply_async((2, 3), headers={"periodic_task_name": "nightly-sum"})
    result.get(timeout=30)
    row = wait_for_row(app, result.id)
    assert row.task_name == "tasks.user.add"
    assert json.loads(row.args) == [2, 3]
    assert json.loads(row.kwargs) == {}
    assert json.loads(row.result) == 5
    assert row.worker == worker.hostname
    assert row.queue == "default"
    assert row.periodic_task_name == "nightly-sum"
    assert row.created_at and row.started_at and row.date_done
    assert aware(row.started_at) <= aware(row.date_done)


def test_failed_row_keeps_the_traceback(app, worker):
    result = app.extensions["celery"].send_task("tests.fails", args=["row"], kwargs={})
    row = wait_for_row(app, result.id, states=("FAILURE",))
    assert "RuntimeError: boom row" in row.traceback
    assert json.loads(row.args) == ["row"]


def test_a_group_result_can_be_saved_and_restored(app, worker):
    from celery import group
    from celery.result import GroupResult

    from tasks.user import add

    result = group(add.s(i, i) for i in range(3)).apply_async()
    result.save()
    assert result.get(timeout=30) == [0, 2, 4]
    restored = GroupResult.restore(result.id, app=app.extensions["celery"])
    assert [child.id for child in restored.results] == [child.id for child in result.results]


def make_rows(app, count, done_at):
    with app.app_context():
        db.session.execute(
            TaskResult.__table__.insert(),
            [
                {
                    "task_id": str(uuid.uuid4()),
                    "task_name": "old",
                    "state": "SUCCESS",
                    "args": "[]",
                    "kwargs": "{}",
                    "retries": 0,
                    "created_at": done_at,
                    "date_done": done_at,
                }
                for _ in range(count)
            ],
        )
        db.session.commit()


def count_rows(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(TaskResult))


def test_cleanup_removes_expired_results_in_batches(app):
    backend = app.extensions["celery"].backend
    now = datetime.now(UTC)
    make_rows(app, 2500, now - timedelta(days=8))  # expired (result_expires is 7 days)
    make_rows(app, 10, now - timedelta(days=1))
    deletes = []

    def count_deletes(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("DELETE FROM TASK_RESULTS"):
            deletes.append(statement)

    event.listen(backend.engine, "before_cursor_execute", count_deletes)
    try:
        assert backend.cleanup() == 2500
    finally:
        event.remove(backend.engine, "before_cursor_execute", count_deletes)
    assert len(deletes) == 3  # 1000 + 1000 + 500, each its own short transaction
    assert count_rows(app) == 10


def test_cleanup_task_runs_on_the_worker_and_beat_schedules_it(app, worker):
    from celery.beat import Scheduler

    celery_app = app.extensions["celery"]
    make_rows(app, 30, datetime.now(UTC) - timedelta(days=30))
    celery_app.send_task("celery.backend_cleanup").get(timeout=30)
    assert count_rows(app) == 1  # only the cleanup task's own result is left
    scheduler = Scheduler(celery_app, lazy=True)
    scheduler.install_default_entries({})
    assert "celery.backend_cleanup" in scheduler.schedule


# -- the admin -----------------------------------------------------------------------
def admin_action(admin_client, action, row_ids):
    token = csrf_token_from(admin_client.get("/admin/taskresult/").get_data(as_text=True))
    return admin_client.post(
        "/admin/taskresult/action/",
        data={"action": action, "rowid": [str(i) for i in row_ids], "csrf_token": token},
    )


def test_admin_lists_results_read_only_with_filters_and_search(app, admin_client, worker):
    result = app.extensions["celery"].send_task("tests.fails", args=["admin-list"])
    wait_for_row(app, result.id, states=("FAILURE",))
    page = admin_client.get(f"/admin/taskresult/?search={result.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and result.id in html and "tests.fails" in html
    assert admin_client.get("/admin/taskresult/?flt0_0=FAILURE").status_code == 200
    creating = admin_client.get("/admin/taskresult/new/")  # read-only: back to the list
    assert creating.status_code == 302 and creating.headers["Location"] == "/admin/taskresult/"
    row = row_of(app, result.id)
    detail = admin_client.get(f"/admin/taskresult/details/?id={row.id}").get_data(as_text=True)
    assert "RuntimeError: boom admin-list" in detail


def test_admin_shows_and_filters_times_in_the_site_zone(app, admin_client):
    from luffy.admin.times import LocalTimeFilter

    with app.app_context():
        for hour in (1, 3):  # 09:00 and 11:00 in Asia/Shanghai
            db.session.add(
                TaskResult(
                    task_id=f"zone-{hour}",
                    task_name="tests.zone",
                    state="SUCCESS",
                    created_at=datetime(2026, 5, 1, hour, tzinfo=UTC),
                )
            )
        db.session.commit()
    page = admin_client.get("/admin/taskresult/?search=zone-").get_data(as_text=True)
    assert "2026-05-01 09:00:00 +08:00" in page and "2026-05-01 11:00:00 +08:00" in page

    view = next(v for v in app.extensions["luffy_admin"]._views if v.endpoint == "taskresult")
    index, later_than = next(
        (i, f)
        for i, f in enumerate(view._filters)
        if f.column.key == "created_at"
        and isinstance(f, LocalTimeFilter)
        and f.operation() == "greater than"
    )
    url = f"/admin/taskresult/?flt0_{view.get_filter_arg(index, later_than)}=2026-05-01+10:00:00"
    page = admin_client.get(url).get_data(as_text=True)
    assert "zone-3" in page and "zone-1" not in page  # 10:00 typed is Shanghai time, 02:00 UTC


def test_admin_retries_a_failed_task_with_the_same_arguments(app, admin_client, worker):
    result = app.extensions["celery"].send_task("tests.fails", args=["again"], kwargs={})
    row = wait_for_row(app, result.id, states=("FAILURE",))
    response = admin_action(admin_client, "retry", [row.id])
    assert response.status_code == 302
    deadline = time.monotonic() + 30
    rows = []
    while time.monotonic() < deadline and len(rows) < 2:
        with app.app_context():
            rows = db.session.scalars(
                select(TaskResult).where(
                    TaskResult.task_name == "tests.fails", TaskResult.state == "FAILURE"
                )
            ).all()
            db.session.expunge_all()
        time.sleep(0.1)
    assert len(rows) == 2
    retried = next(r for r in rows if r.task_id != result.id)
    assert json.loads(retried.args) == ["again"]


def test_admin_revokes_a_pending_task(app, admin_client, worker, redis_client):
    celery_app = app.extensions["celery"]
    result = celery_app.send_task("tests.effect_once", args=["revoked"], countdown=4)
    row = wait_for_row(app, result.id, states=("PENDING",))  # the delayed task's row
    assert admin_action(admin_client, "revoke", [row.id]).status_code == 302
    assert row_of(app, result.id).state == "REVOKED"
    time.sleep(6)
    assert redis_client.get("luffy:test:revoked:runs") is None
    assert row_of(app, result.id).state == "REVOKED"


def test_admin_terminates_a_running_task(app, admin_client, redis_client):
    from conftest import start_worker, stop_worker

    process = start_worker(app, "-c", "1", "-Q", "terminate-test")
    try:
        celery_app = app.extensions["celery"]
        result = celery_app.send_task(
            "tests.effect_once", args=["terminated", 30], queue="terminate-test"
        )
        row = wait_for_row(app, result.id, states=("STARTED",))
        assert admin_action(admin_client, "revoke", [row.id]).status_code == 302
        time.sleep(3)
        assert row_of(app, result.id).state == "REVOKED"
        assert redis_client.get("luffy:test:terminated:effects") is None
        assert (
            celery_app.send_task("tests.effect_once", args=["after"], queue="terminate-test").get(
                timeout=30
            )
            == "after"
        )
    finally:
        stop_worker(process)
