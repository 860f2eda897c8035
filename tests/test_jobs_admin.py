"""The registries, the admin page 任务队列 with its actions, ``flask jobs`` and the export."""

import csv
import io
import time
import uuid

import pytest
from conftest import csrf_token_from
from seckill_helpers import add_buyers, add_sale
from sqlalchemy import insert

from luffy.extensions import db
from luffy.jobs import Job, Queue, enqueue, registries
from luffy.models import Order
from luffy.models.base import utcnow


def wait_status(job, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.get_status() == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} is {job.get_status()}, not {wanted}")


def on_rabbitmq(app):
    return app.config["CELERY"]["broker_url"].startswith("amqp")


def idle_queue():
    return f"idle-{uuid.uuid4().hex[:8]}"


def post_action(client, page_url, **data):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post("/admin/jobs/action", data={**data, "csrf_token": token})


# -- registries ----------------------------------------------------------------------
def test_registries_count_and_list_waiting_messages_a_page_at_a_time(app_ctx):
    queue = idle_queue()
    jobs = [Queue(queue).enqueue("tests.record_call", "k", i, "中文") for i in range(7)]
    page = registries.list_jobs(queue, "queued", page=1, per_page=3)
    assert page["total"] == 7
    if on_rabbitmq(app_ctx):  # a queue cannot be read without taking its messages: counts only
        assert page["jobs"] == [] and "JOBS_RABBITMQ_MANAGEMENT_URL" in page["note"]
        return
    assert [entry["id"] for entry in page["jobs"]] == [job.id for job in jobs[:3]]
    assert page["jobs"][0]["args"] == '"k", 0, "中文"'
    assert page["jobs"][0]["func"] == "tests.record_call"
    assert page["jobs"][0]["enqueued_at"] is not None
    last = registries.list_jobs(queue, "queued", page=3, per_page=3)
    assert [entry["id"] for entry in last["jobs"]] == [jobs[6].id]


def test_registries_while_a_job_runs_and_after(app, app_ctx, worker):
    running = enqueue("tests.effect_once", uuid.uuid4().hex[:6], 3)
    failed = enqueue("tests.fails", "registry")
    wait_status(running, "started")
    started = registries.list_jobs("default", "started")
    assert running.id in [entry["id"] for entry in started["jobs"]]
    assert started["jobs"][0]["worker"] == worker.hostname
    wait_status(failed, "failed")
    failures = registries.list_jobs("default", "failed")
    assert failures["jobs"][0]["exc"] == "RuntimeError: boom registry"
    wait_status(running, "finished")
    finished = registries.list_jobs("default", "finished")["jobs"]
    assert running.id in [entry["id"] for entry in finished]
    started = registries.list_jobs("default", "started")["jobs"]
    assert running.id not in [entry["id"] for entry in started]


def test_deferred_and_scheduled_registries(app_ctx):
    queue = idle_queue()
    parent = Queue(queue).enqueue("tests.record_call", "parent")
    child = Queue(queue).enqueue("tests.record_call", "child", depends_on=parent)
    later = Queue(queue).enqueue_in(3600, "tests.record_call", "later")
    deferred = registries.list_jobs(queue, "deferred")
    assert [entry["id"] for entry in deferred["jobs"]] == [child.id]
    assert deferred["jobs"][0]["depends_on"] == [parent.id]
    scheduled = registries.list_jobs(queue, "scheduled")
    assert [entry["id"] for entry in scheduled["jobs"]] == [later.id]


# -- the admin page ------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["/admin/jobs/", "/admin/jobs/queue/default/failed/", "/admin/jobs/queue/default/empty"]
)
def test_the_page_is_for_admins_only(app, client, buyer_client, url):
    assert client.get(url).status_code == 302
    assert "/login" in client.get(url).headers["Location"]
    assert buyer_client.get(url).status_code == 403


def test_a_non_admin_cannot_post_an_action(app, buyer_client):
    response = buyer_client.post("/admin/jobs/action", data={"action": "cancel", "queue": "x"})
    assert response.status_code in (400, 403)  # CSRF refuses first, else the admin rule


def test_the_index_shows_queues_registries_and_workers(app, admin_client, worker):
    with app.app_context():
        enqueue("tests.fails", "index")
    page = admin_client.get("/admin/jobs/").get_data(as_text=True)
    assert "任务队列" in page
    for name in ("default", "seckill", "notify", "periodic"):
        assert f'data-queue="{name}"' in page
    assert worker.hostname in page
    assert "导出秒杀订单" in page


def test_cancel_from_the_list_and_a_wrong_state_is_refused(app, admin_client):
    queue = idle_queue()
    with app.app_context():
        waiting = Queue(queue).enqueue("tests.record_call", "cancel-me")
        later = Queue(queue).enqueue_in(3600, "tests.record_call", "later")
    url = f"/admin/jobs/queue/{queue}/queued/"
    listing = admin_client.get(url).get_data(as_text=True)
    if on_rabbitmq(app):
        assert "共 2 个" in listing and "JOBS_RABBITMQ_MANAGEMENT_URL" in listing
    else:
        assert waiting.id in listing and "cancel-me" in listing
    response = post_action(
        admin_client, url, action="cancel", queue=queue, registry="queued", ids=[waiting.id]
    )
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已取消 1 个任务" in page
    response = post_action(
        admin_client, url, action="cancel", queue=queue, registry="queued", ids=[waiting.id]
    )
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"任务 {waiting.id} 的状态是「已取消」" in page
    with app.app_context():
        assert Job.fetch(waiting.id).get_status() == "canceled"
        assert Job.fetch(later.id).get_status() == "scheduled"


def test_requeue_selected_and_all_failed_and_delete(app, admin_client, worker):
    with app.app_context():
        first = enqueue("tests.fails", "one")
        second = enqueue("tests.fails", "two")
        done = enqueue("tests.record_call", "done")
        for job in (first, second):
            wait_status(job, "failed")
        wait_status(done, "finished")
    url = "/admin/jobs/queue/default/failed/"
    listing = admin_client.get(url).get_data(as_text=True)
    assert "RuntimeError: boom one" in listing
    response = post_action(
        admin_client, url, action="requeue", queue="default", registry="failed", ids=[first.id]
    )
    assert "已重新入队 1 个任务" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    with app.app_context():
        wait_status(first, "failed")
    response = post_action(
        admin_client, url, action="requeue_all", queue="default", registry="failed"
    )
    assert "已重新入队 2 个任务" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    finished_url = "/admin/jobs/queue/default/finished/"
    response = post_action(
        admin_client,
        finished_url,
        action="requeue",
        queue="default",
        registry="finished",
        ids=[done.id],
    )
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "只有失败的任务可以重新入队" in page
    response = post_action(
        admin_client,
        finished_url,
        action="delete",
        queue="default",
        registry="finished",
        ids=[done.id],
    )
    assert "已删除 1 个任务" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    with app.app_context():
        assert not Job.exists(done.id)


def test_an_action_without_csrf_is_refused(app, admin_client):
    response = admin_client.post(
        "/admin/jobs/action", data={"action": "cancel", "queue": "default", "ids": ["x"]}
    )
    assert response.status_code == 400


def test_empty_a_queue_after_a_confirmation_saying_how_many(app, admin_client):
    queue = idle_queue()  # no worker consumes it: the four messages wait
    with app.app_context():
        jobs = [Queue(queue).enqueue("tests.record_call", "empty", i) for i in range(4)]
    page = admin_client.get(f"/admin/jobs/queue/{queue}/empty").get_data(as_text=True)
    assert '<strong class="jobs-waiting">4</strong>' in page
    token = csrf_token_from(page)
    response = admin_client.post(f"/admin/jobs/queue/{queue}/empty", data={"csrf_token": token})
    assert "移除了 4 条消息" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    with app.app_context():
        assert registries.list_jobs(queue, "queued")["total"] == 0
        assert Job.fetch(jobs[0].id).get_status() == "canceled"


def test_unknown_queue_registry_and_page_are_404_not_500(app, admin_client):
    assert admin_client.get("/admin/jobs/queue/default/nope/").status_code == 404
    assert admin_client.get("/admin/jobs/queue/bad%20name/queued/").status_code == 404
    assert admin_client.get("/admin/jobs/queue/nope/empty").status_code == 404
    assert admin_client.get("/admin/jobs/queue/default/failed/?page=abc").status_code == 200
    assert admin_client.get("/admin/jobs/export/never-issued").status_code == 404


# -- the CLI -------------------------------------------------------------------------
def test_flask_jobs_info_shows_queues_registries_and_workers(app, runner, worker):
    with app.app_context():
        wait_status(enqueue("tests.fails", "info"), "failed")
    result = runner.invoke(args=["jobs", "info"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["queue", *registries.REGISTRIES]
    default = next(line.split() for line in lines if line.startswith("default "))
    with app.app_context():
        counts = next(q["counts"] for q in registries.overview() if q["name"] == "default")
    assert int(default[registries.REGISTRIES.index("failed") + 1]) == counts["failed"] >= 1
    assert any(line.startswith(worker.hostname) for line in lines)


def test_flask_jobs_enqueue_cancel_and_requeue(app, runner, worker):
    result = runner.invoke(
        args=["jobs", "enqueue", "tests.record_call", '"cli"', "2", "--in", "1h"]
    )
    assert result.exit_code == 0, result.output
    job_id = result.output.split()[1]
    assert "(scheduled)" in result.output
    result = runner.invoke(args=["jobs", "cancel", job_id])
    assert result.exit_code == 0 and f"Canceled {job_id}" in result.output
    result = runner.invoke(args=["jobs", "cancel", job_id])
    assert result.exit_code == 1 and "only a queued, scheduled or deferred job" in result.output
    result = runner.invoke(args=["jobs", "enqueue", "tests.fails", '"cli"'])
    failing = result.output.split()[1]
    with app.app_context():
        wait_status(Job(failing), "failed")
    result = runner.invoke(args=["jobs", "requeue", "--failed", "--queue", "default"])
    assert result.exit_code == 0 and "Requeued 1 failed job(s)." in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["enqueue", "tasks.user.nope", "1"], "no task named tasks.user.nope"),
        (["enqueue", "os.system", '"ls"'], "outside the packages"),
        (["enqueue", "tasks.user.add", "two", "3"], "not JSON"),
        (["enqueue", "tasks.user.add", "1", "2", "--in", "-30s"], "is not a delay"),
        (["enqueue", "tasks.user.add", "1", "2", "--at", "tomorrow"], "not an ISO date-time"),
        (["enqueue", "tasks.user.add", "1", "2", "--queue", "nope"], "no queue 'nope'"),
        (["enqueue", "tasks.user.add", "--kwargs", "[1]"], "must be a JSON object"),
        (["cancel", "never-issued"], "no job with id never-issued"),
        (["empty", "nope", "--yes"], "no queue 'nope'"),
    ],
)
def test_flask_jobs_bad_input_is_a_clear_message(app, runner, args, message):
    result = runner.invoke(args=["jobs", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_flask_jobs_empty_asks_then_removes(app, runner):
    queue = idle_queue()
    with app.app_context():
        for i in range(3):
            Queue(queue).enqueue("tests.record_call", "cli-empty", i)
    result = runner.invoke(args=["jobs", "empty", queue], input="n\n")
    assert f"Remove the 3 message(s) waiting in {queue}?" in result.output
    assert result.exit_code == 1
    result = runner.invoke(args=["jobs", "empty", queue], input="y\n")
    assert f"Removed 3 message(s) from {queue}." in result.output


# -- the export ----------------------------------------------------------------------
def test_export_progress_is_readable_midway_and_the_file_is_right(app, admin_client, worker):
    course_id, sale_id = add_sale(app, stock=5000, course_name="导出课程")
    buyers = add_buyers(app, 1200, prefix="exporter")
    with app.app_context():
        db.session.execute(
            insert(Order),
            [
                {
                    "ticket": f"t{n:05d}",
                    "user_id": user_id,
                    "course_id": course_id,
                    "sale_id": sale_id,
                    "price": "9.90",
                    "state": "created",
                    "created_at": utcnow(),
                }
                for n, user_id in enumerate(buyers)
            ],
        )
        db.session.commit()
        job = enqueue("tasks.export.export_sale_orders", sale_id, chunk_size=100, pause=0.1)
    page = admin_client.get(f"/admin/jobs/export/{job.id}")
    assert page.status_code == 200 and 'id="export-bar"' in page.get_data(as_text=True)
    midway = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = admin_client.get(f"/api/v1/tasks/{job.id}/").get_json()
        if body["status"] == "started" and body["progress"] and body["progress"]["done"]:
            midway = body["progress"]
            break
        time.sleep(0.05)
    assert midway is not None and 0 < midway["done"] < 1200 and midway["total"] == 1200
    with app.app_context():
        wait_status(job, "finished")
    download = admin_client.get(f"/admin/jobs/export/{job.id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].endswith(f"sale-{sale_id}-orders.csv")
    rows = list(csv.reader(io.StringIO(download.get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["订单 ID", "票据", "用户"]
    assert len(rows) == 1201
    assert rows[1][1] == "t00000" and rows[1][2] == "exporter0" and rows[1][3] == "导出课程"
    assert rows[-1][1] == "t01199"


def test_export_from_the_admin_form(app, admin_client, worker):
    _, sale_id = add_sale(app, stock=10, course_name="表单导出")
    page = admin_client.get("/admin/jobs/").get_data(as_text=True)
    token = csrf_token_from(page)
    response = admin_client.post(
        "/admin/jobs/export", data={"sale_id": str(sale_id), "csrf_token": token}
    )
    assert response.status_code == 302 and "/admin/jobs/export/" in response.headers["Location"]
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with app.app_context():
        wait_status(Job(job_id), "finished")
        assert Job(job_id).result["rows"] == 0
    bad = admin_client.post(
        "/admin/jobs/export", data={"sale_id": "99999999999", "csrf_token": token}
    )
    assert "请选择一个秒杀活动" in admin_client.get(bad.headers["Location"]).get_data(as_text=True)
