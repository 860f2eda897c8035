"""The jobs API on a real worker: enqueue with each option, the Job handle, dependencies."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import start_worker, stop_worker
from sqlalchemy import select

from luffy.extensions import db
from luffy.jobs import (
    InvalidJobState,
    Job,
    JobError,
    JobExists,
    NoSuchJobError,
    Queue,
    Retry,
    enqueue,
    enqueue_at,
    enqueue_in,
)
from luffy.models import TaskResult


def wait_status(job, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = job.get_status()
        if status == wanted:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} is {status}, not {wanted}")


def key():
    return uuid.uuid4().hex[:8]


def test_enqueue_by_reference_walks_queued_started_finished(app_ctx, worker):
    from tasks.user import add

    job = Queue("idle-walk").enqueue(add, 2, 3)
    assert job.get_status() == "queued"  # nobody consumes idle-walk yet
    assert job.func_name == "tasks.user.add" and job.origin == "idle-walk"
    slow = enqueue("tests.effect_once", key(), 1.5)
    wait_status(slow, "started")
    assert slow.worker_name == worker.hostname
    wait_status(slow, "finished")
    assert slow.started_at <= slow.ended_at


def test_enqueue_result_and_handle_fields(app_ctx, worker):
    from tasks.user import add

    job = enqueue(add, 2, 3, description="two and three", meta={"who": "测试"})
    wait_status(job, "finished")
    fetched = Job.fetch(job.id)
    assert fetched.result == 5
    assert fetched.args == [2, 3]
    assert fetched.description == "two and three"
    assert fetched.meta == {"who": "测试"}
    assert fetched.worker_name == worker.hostname
    assert fetched.enqueued_at <= fetched.started_at <= fetched.ended_at


def test_a_failing_job_is_failed_with_its_traceback(app_ctx, worker):
    job = enqueue("tests.fails", "walk")
    wait_status(job, "failed")
    assert "RuntimeError: boom walk" in job.exc_info
    assert job.result is None


def test_plain_delay_is_a_job_too(app_ctx, worker):
    from tasks.user import add

    result = add.delay(20, 22)
    assert result.get(timeout=30) == 42
    job = Job.fetch(result.id)
    assert job.get_status() == "finished"
    assert job.func_name == "tasks.user.add" and job.result == 42


def test_enqueue_in_and_at_are_scheduled_then_run(app_ctx, worker):
    from tasks.user import add

    later = enqueue_in(timedelta(seconds=3), add, 1, 1)
    assert later.get_status() == "scheduled"
    at = enqueue_at(datetime.now(UTC) + timedelta(seconds=3), add, 2, 2)
    assert at.get_status() == "scheduled"
    wait_status(later, "finished")
    wait_status(at, "finished")
    assert later.started_at >= later.enqueued_at + timedelta(seconds=2.5)
    assert at.result == 4


def test_job_timeout_stops_a_long_job(app_ctx, worker):
    job = enqueue("tests.effect_once", key(), 20, job_timeout=1)
    wait_status(job, "failed")
    assert "SoftTimeLimitExceeded" in job.exc_info


def test_retry_waits_the_listed_intervals(app_ctx, worker, redis_client):
    name = key()
    job = enqueue("tests.flaky", name, 2, retry=Retry(3, interval=[1, 3]))
    wait_status(job, "finished")
    assert job.result == 3
    times = [float(t) for t in redis_client.lrange(f"luffy:test:{name}:times", 0, -1)]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.9
    assert times[2] - times[1] >= 2.9


def test_retry_gives_up_after_max(app_ctx, worker, redis_client):
    name = key()
    job = enqueue("tests.flaky", name, 5, retry=Retry(1, interval=0))
    try:
        wait_status(job, "failed")
    except AssertionError:
        print(worker.log_path.read_text(errors="replace")[-6000:])
        raise
    assert int(redis_client.get(f"luffy:test:{name}:runs")) == 2


def test_result_ttl_and_failure_ttl_set_the_expiry(app_ctx, worker, redis_client):
    from tasks.user import add

    kept = enqueue(add, 1, 2, result_ttl=600)
    failed = enqueue("tests.fails", "ttl", failure_ttl=30)
    forever = enqueue(add, 1, 3, result_ttl=-1)
    for job in (kept, failed, forever):
        wait_status(job, "finished" if job is not failed else "failed")
    assert 500 < redis_client.ttl(f"luffy:job:{kept.id}") <= 600
    assert 0 < redis_client.ttl(f"luffy:job:{failed.id}") <= 30
    assert redis_client.ttl(f"luffy:job:{forever.id}") == -1
    rows = {row.task_id: row for row in db.session.scalars(select(TaskResult))}
    assert rows[forever.id].expires_at.year == 9999
    assert rows[failed.id].expires_at is not None


def test_the_cleanup_honours_each_jobs_expiry(app_ctx, worker):
    from tasks.user import add

    short = enqueue(add, 1, 1, result_ttl=0)
    forever = enqueue(add, 2, 2, result_ttl=-1)
    plain = enqueue(add, 3, 3)
    for job in (short, forever, plain):
        wait_status(job, "finished")
    backend = app_ctx.extensions["celery"].backend
    # Everything looks a year old to the cleanup: only the job kept forever stays.
    backend.expires = timedelta(microseconds=1)
    try:
        time.sleep(0.05)
        backend.cleanup()
    finally:
        backend.expires = app_ctx.extensions["celery"].conf.result_expires
    left = set(db.session.scalars(select(TaskResult.task_id)))
    assert forever.id in left
    assert short.id not in left and plain.id not in left


def test_depends_on_defers_then_runs(app_ctx, worker):
    first = enqueue("tests.effect_once", key(), 1.0)
    second = enqueue("tests.effect_once", key(), 0.5)
    child = enqueue("tests.record_call", key(), "after", depends_on=[first, second.id])
    assert child.get_status() == "deferred"
    wait_status(first, "finished")
    wait_status(child, "finished", timeout=40)
    assert child.started_at >= first.ended_at
    assert child.started_at >= second.ended_at


def test_depends_on_a_finished_job_runs_at_once(app_ctx, worker):
    from tasks.user import add

    parent = enqueue(add, 1, 1)
    wait_status(parent, "finished")
    child = enqueue(add, 5, 5, depends_on=parent)
    wait_status(child, "finished")
    assert child.result == 10


def test_a_failed_parent_cancels_its_dependents(app_ctx, worker, redis_client):
    name = key()
    parent = enqueue("tests.fails", "parent")
    child = enqueue("tests.record_call", name, depends_on=parent)
    grandchild = enqueue("tests.record_call", name, depends_on=child)
    wait_status(parent, "failed")
    wait_status(child, "canceled")
    wait_status(grandchild, "canceled")
    time.sleep(1)
    assert redis_client.llen(f"luffy:test:{name}:calls") == 0


def test_a_unique_job_id_is_refused_the_second_time(app_ctx, worker):
    from tasks.user import add

    job_id = f"nightly-{key()}"
    job = enqueue(add, 1, 2, job_id=job_id)
    assert job.id == job_id
    with pytest.raises(JobExists, match=job_id):
        enqueue(add, 1, 2, job_id=job_id)
    wait_status(job, "finished")
    with pytest.raises(JobExists, match="finished"):
        enqueue(add, 1, 2, job_id=job_id)


def test_cancel_before_run_never_runs_and_requeue_runs_again(app, app_ctx, redis_client):
    """No worker consumes the queue while jobs are canceled; one started later drops them."""
    queue = f"idle-{key()}"
    name = key()
    queued = Queue(queue).enqueue("tests.record_call", name, "queued")
    scheduled = Queue(queue).enqueue_in(2, "tests.record_call", name, "scheduled")
    failing = Queue(queue).enqueue("tests.fails", "requeue-me")
    kept = Queue(queue).enqueue("tests.record_call", name, "kept")
    walker = Queue(queue).enqueue("tests.effect_once", name, 1.5)
    assert walker.get_status() == "queued"
    queued.cancel()
    scheduled.cancel()
    assert queued.get_status() == "canceled" and scheduled.get_status() == "canceled"
    with pytest.raises(InvalidJobState, match="canceled"):
        queued.cancel()
    process = start_worker(app, "-Q", queue, "-c", "1")
    try:
        wait_status(walker, "started")  # the same job walks queued -> started -> finished
        wait_status(walker, "finished")
        wait_status(kept, "finished")
        wait_status(failing, "failed")
        time.sleep(3)  # the scheduled one would be due by now
        calls = [json.loads(c)[0] for c in redis_client.lrange(f"luffy:test:{name}:calls", 0, -1)]
        assert calls == [["kept"]]
        assert queued.get_status() == "canceled" and scheduled.get_status() == "canceled"
        with pytest.raises(InvalidJobState, match="finished"):
            kept.cancel()
        with pytest.raises(InvalidJobState, match="only a failed job"):
            kept.requeue()
        failing.requeue()
        assert failing.get_status() in ("queued", "started", "failed")
        wait_status(failing, "failed")
        rows = db.session.scalars(select(TaskResult).where(TaskResult.task_id == failing.id)).all()
        assert len(rows) == 1 and json.loads(rows[0].args) == ["requeue-me"]
    finally:
        stop_worker(process)


def test_requeue_runs_a_failed_job_again_with_the_same_arguments(app_ctx, worker, redis_client):
    name = key()
    job = enqueue("tests.flaky", name, 1)
    wait_status(job, "failed")
    job.requeue()
    wait_status(job, "finished")
    assert job.result == 2
    assert redis_client.llen(f"luffy:test:{name}:times") == 2


def test_delete_forgets_the_job(app_ctx, worker):
    from tasks.user import add

    job = enqueue(add, 1, 2)
    wait_status(job, "finished")
    job.delete()
    with pytest.raises(NoSuchJobError):
        Job.fetch(job.id)


def test_meta_is_readable_while_the_job_runs(app_ctx, client, worker):
    job = enqueue("tests.report_progress", key(), 30, 0.1)
    deadline = time.monotonic() + 30
    seen = None
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/tasks/{job.id}/").get_json()
        assert answer["code"] == 100, answer
        if answer["status"] == "started" and answer["progress"]:
            seen = answer["progress"]
            break
        time.sleep(0.05)
    assert seen is not None and 0 < seen["done"] < 30 and seen["total"] == 30
    assert answer["state"] == "STARTED"
    wait_status(job, "finished")
    answer = client.get(f"/api/v1/tasks/{job.id}/").get_json()
    assert answer["status"] == "finished" and answer["progress"] == {"done": 30, "total": 30}


@pytest.mark.parametrize(
    "func, args, options, message",
    [
        ("tasks.user.nope", (), {}, "no task named tasks.user.nope"),
        ("os.system", ("true",), {}, "outside the packages"),
        ("luffy.cli.seed_demo_data", (), {}, "outside the packages"),
        ("not a name", (), {}, "not a dotted function name"),
        ("tasks.user.add", (1, 2), {"job_timeout": -1}, "job_timeout"),
        ("tasks.user.add", (1, 2), {"result_ttl": "soon"}, "result_ttl"),
        ("tasks.user.add", (1, 2), {"retry": 3}, "Retry"),
        ("tasks.user.add", (1, 2), {"job_id": "bad id/"}, "job_id"),
        ("tasks.user.add", (1, 2), {"depends_on": "never-issued"}, "no job with id"),
    ],
)
def test_bad_input_is_a_clear_error(app_ctx, func, args, options, message):
    with pytest.raises(JobError, match=message):
        enqueue(func, *args, **options)


def test_bad_delays_and_retries_are_refused(app_ctx):
    with pytest.raises(JobError, match="zero or more"):
        enqueue_in(-5, "tasks.user.add", 1, 2)
    with pytest.raises(JobError, match="time zone"):
        enqueue_at(datetime(2030, 1, 1), "tasks.user.add", 1, 2)
    with pytest.raises(JobError, match="max"):
        Retry(0)
    with pytest.raises(JobError, match="interval"):
        Retry(2, interval=[1, -1])
    with pytest.raises(NoSuchJobError):
        Job.fetch("never-issued")
