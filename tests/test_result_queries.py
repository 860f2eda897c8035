"""The results table read without scanning it: the dashboard's history and the admin list's
totals equal a direct count on a small table; a big total is capped and says so; the expiry
cleanup deletes in batches and keeps what has not expired."""

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from luffy import result_queries
from luffy.extensions import db
from luffy.models import TaskResult

NOW = datetime.now(UTC).replace(microsecond=0)
STATES = ["SUCCESS", "SUCCESS", "FAILURE", "PENDING", "STARTED", "RETRY", "REVOKED"]


@pytest.fixture
def results(app):
    """150 rows over the last two days, in every state, for three task names."""
    rows, values = [], []
    with app.app_context():
        for index in range(150):
            created = NOW - timedelta(minutes=19 * index)
            state = STATES[index % len(STATES)]
            done = (
                created + timedelta(seconds=30)
                if state in ("SUCCESS", "FAILURE", "REVOKED")
                else None
            )
            name, periodic = f"tests.kind{index % 3}", "nightly" if index % 4 == 0 else None
            values.append((state, created, done, name, periodic))
            rows.append(
                TaskResult(
                    task_id=f"result-{index:03d}",
                    task_name=name,
                    periodic_task_name=periodic,
                    state=state,
                    created_at=created,
                    date_done=done,
                    traceback="Traceback\nRuntimeError: boom" if state == "FAILURE" else None,
                )
            )
        db.session.add_all(rows)
        db.session.commit()
    return values


def test_state_counts_equal_a_direct_count(app, results):
    with app.app_context():
        counts = result_queries.state_counts(db.session, NOW)
    hour = Counter(s for s, created, *_ in results if created >= NOW - timedelta(hours=1))
    day = Counter(s for s, created, *_ in results if created >= NOW - timedelta(days=1))
    assert counts["last_hour"] == {state: hour.get(state, 0) for state in result_queries.STATES}
    assert counts["last_day"] == {state: day.get(state, 0) for state in result_queries.STATES}
    assert sum(counts["last_day"].values()) == sum(day.values()) > 0


def test_throughput_and_failures_equal_a_direct_count(app, results):
    with app.app_context():
        minutes = result_queries.throughput_per_minute(db.session, NOW, 60)
        failures = result_queries.latest_failures(db.session, 5)
    done = [d for _, _, d, *_ in results if d is not None]
    for start, count in minutes:
        assert count == sum(1 for d in done if start <= d < start + timedelta(minutes=1))
    assert sum(count for _, count in minutes) > 0
    failed = sorted((d for s, _, d, *_ in results if s == "FAILURE"), reverse=True)[:5]
    assert [row.date_done.replace(tzinfo=UTC) for row in failures] == [
        moment.replace(tzinfo=UTC) for moment in failed
    ]


def shown_total(page):
    match = re.search(r'class="nav-link active">[^<(]*\(([^)]+)\)', page)
    return match.group(1) if match else None


@pytest.mark.parametrize(
    "query, keep",
    [
        ("", lambda row: True),
        ("?flt0_0=FAILURE", lambda row: row[0] == "FAILURE"),
        ("?flt0_2=tests.kind1", lambda row: row[3] == "tests.kind1"),
        ("?flt0_4=nightly", lambda row: row[4] == "nightly"),
    ],
)
def test_admin_list_total_equals_a_direct_count(app, admin_client, results, query, keep):
    page = admin_client.get(f"/admin/taskresult/{query}").get_data(as_text=True)
    assert shown_total(page) == str(sum(1 for row in results if keep(row)))


def test_admin_list_total_is_capped_and_says_so(app, admin_client, results, monkeypatch):
    monkeypatch.setattr(result_queries, "COUNT_CAP", 20)
    page = admin_client.get("/admin/taskresult/?flt0_0=SUCCESS").get_data(as_text=True)
    assert shown_total(page) == "20+"
    page = admin_client.get("/admin/taskresult/?search=result-00").get_data(as_text=True)
    assert shown_total(page) == "10" and "result-009" in page and "result-010" not in page


def test_cleanup_deletes_expired_rows_in_batches_and_keeps_the_rest(app, results):
    backend = app.extensions["celery"].backend
    old = NOW - backend.expires - timedelta(hours=1)
    with app.app_context():
        db.session.add_all(
            TaskResult(
                task_id=f"old-{index}",
                state="SUCCESS" if index % 2 else "PENDING",
                created_at=old,
                date_done=old if index % 2 else None,
            )
            for index in range(23)
        )
        db.session.commit()
    backend.cleanup_batch_size = 5
    try:
        deleted = backend.cleanup()
    finally:
        backend.cleanup_batch_size = 1000
    with app.app_context():
        left = db.session.scalars(select(TaskResult.task_id)).all()
    assert deleted == 23 and len(left) == len(results)
    assert not [task_id for task_id in left if task_id.startswith("old-")]
