"""Admin forms over HTTP: the banner image (upload or path), Chinese words, times in TIMEZONE."""

import json
import re

import pytest
from conftest import csrf_token_from

from luffy.extensions import db
from luffy.models import Banner


def banner_count(app):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count(Banner.id)))


def test_the_banner_path_field_is_not_required_in_the_browser(admin_client):
    html = admin_client.get("/admin/banner/new/").get_data(as_text=True)
    field = re.search(r"<input[^>]*name=\"image\"[^>]*>", html).group(0)
    assert "required" not in field


@pytest.mark.parametrize("path", ["x", "javascript:alert(1)", "//evil.example/a.png", "/a.txt"])
def test_a_path_that_is_not_an_image_is_refused(app, admin_client, path):
    token = csrf_token_from(admin_client.get("/admin/banner/new/").get_data(as_text=True))
    response = admin_client.post(
        "/admin/banner/new/",
        data={"title": "坏路径", "image": path, "orders": "1", "csrf_token": token},
    )
    assert response.status_code == 200
    assert "图片地址须是" in response.get_data(as_text=True)
    assert banner_count(app) == 0


def test_a_site_path_is_accepted_without_an_upload(app, admin_client):
    token = csrf_token_from(admin_client.get("/admin/banner/new/").get_data(as_text=True))
    response = admin_client.post(
        "/admin/banner/new/",
        data={
            "title": "路径",
            "image": "/static/img/banners/go.svg",
            "orders": "1",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert banner_count(app) == 1


# -- the admin in Chinese, in one time zone -------------------------------------------------
def test_flask_admins_own_words_are_chinese(admin_client):
    html = admin_client.get("/admin/banner/").get_data(as_text=True)
    assert ">新建</a>" in html and "批量操作" in html and "添加筛选" in html
    assert ">Create<" not in html and "With selected" not in html
    assert '<html lang="zh-CN">' in html


def test_the_admin_bar_names_the_zone_and_links_back(admin_client, app):
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert "时区 Asia/Shanghai" in html and 'href="/">返回网站' in html
    assert 'action="/logout"' in html
    assert "Flower" not in html  # FLOWER_URL unset


def test_the_admin_links_to_flower_when_flower_url_is_set(app, users):
    from conftest import login, restore_celery

    from config import TestingConfig
    from luffy import create_app

    class WithFlower(TestingConfig):
        def __init__(self):
            super().__init__()
            self.FLOWER_URL = "https://ops.example/flower/"

    other = create_app(WithFlower)
    restore_celery(app)  # the session's app stays Celery's current one
    client = other.test_client()
    login(client, "root", "root-password")
    assert 'href="https://ops.example/flower/"' in client.get("/admin/").get_data(as_text=True)


def test_crontab_descriptions_are_all_chinese():
    from luffy.cron_text import describe

    assert describe("*/5 9-18 * * 1-5") == "每 5 分钟, 在 09:00 和 18:59 之间, 周一到周五"
    assert describe("0 0 * 1-6 0,6") == "在 00:00, 仅在 周日和周六, 1月到6月"
    assert describe("not a cron") == "not a cron"


# -- the admin home ---------------------------------------------------------------------------
def test_admin_home_sums_up_today(app, admin_client, users):
    from datetime import timedelta

    from seckill_helpers import add_sale

    from luffy.models import Order, TaskResult
    from luffy.models.base import utcnow

    course_id, sale_id = add_sale(app, stock=5, course_name="首页概况课")
    with app.app_context():
        db.session.add(
            Order(
                ticket="d" * 32,
                user_id=users["buyer"],
                course_id=course_id,
                sale_id=sale_id,
                price="9.90",
                created_at=utcnow(),
            )
        )
        for index, (state, hours_ago) in enumerate(
            (("FAILURE", 1), ("FAILURE", 30), ("SUCCESS", 1))
        ):
            done = utcnow() - timedelta(hours=hours_ago)
            db.session.add(
                TaskResult(task_id=f"t{index}", state=state, created_at=done, date_done=done)
            )
        db.session.commit()
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert re.search(r'id="summary-orders">1<', html)
    assert re.search(r'id="summary-sales">1<', html) and "首页概况课" in html
    assert re.search(r'id="summary-failed">1<', html)  # the one of 30 h ago is not counted
    assert 'href="/admin/taskresult/?flt0_0=FAILURE"' in html


def test_admin_home_counts_the_workers_online(admin_client, worker):
    answer = admin_client.get("/admin/workers").get_json()
    assert answer["code"] == 100 and answer["online"] >= 1  # the session's worker at least


# -- periodic tasks: one schedule type, created in place, switched per row ------------------
def periodic_task_form(admin_client, **fields):
    token = csrf_token_from(admin_client.get("/admin/periodictask/new/").get_data(as_text=True))
    data = {
        "name": "表单测试",
        "task": "tasks.home.update_banner",
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "enabled": "y",
        "csrf_token": token,
        **fields,
    }
    return admin_client.post("/admin/periodictask/new/", data=data)


def only_task(app):
    from luffy.models import PeriodicTask

    with app.app_context():
        rows = db.session.scalars(db.select(PeriodicTask)).unique().all()
        assert len(rows) == 1
        row = rows[0]
        return {
            "interval": (row.interval.every, row.interval.period) if row.interval else None,
            "crontab": row.crontab.expression if row.crontab else None,
            "crontab_zone": row.crontab.timezone if row.crontab else None,
            "clocked": row.clocked.clocked_time if row.clocked else None,
        }


def test_the_form_offers_one_schedule_type_and_no_raw_none(admin_client):
    html = admin_client.get("/admin/periodictask/new/").get_data(as_text=True)
    assert 'id="schedule_kind"' in html and '__None">__None' not in html
    assert "— 选择已有的调度 —" in html
    for kind in ("interval", "crontab", "clocked", "solar"):
        assert f'data-schedule-kind="{kind}"' in html


def test_a_new_interval_is_created_from_the_task_form(app, admin_client):
    response = periodic_task_form(
        admin_client, schedule_kind="interval", new_every="3", new_period="minutes"
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    assert only_task(app)["interval"] == (3, "minutes")


def test_a_new_crontab_is_created_in_the_site_zone(app, admin_client):
    response = periodic_task_form(
        admin_client, schedule_kind="crontab", new_crontab="*/5 9-18 * * 1-5"
    )
    assert response.status_code == 302
    saved = only_task(app)
    assert saved["crontab_zone"] == "Asia/Shanghai" and saved["interval"] is None
    html = admin_client.get("/admin/periodictask/").get_data(as_text=True)
    assert "每 5 分钟, 在 09:00 和 18:59 之间, 周一到周五" in html


def test_a_one_off_is_typed_and_listed_in_the_site_zone(app, admin_client):
    from datetime import UTC, datetime

    from luffy.models.base import as_utc

    response = periodic_task_form(
        admin_client, schedule_kind="clocked", new_clocked_time="2031-01-02 09:30:00"
    )
    assert response.status_code == 302
    assert as_utc(only_task(app)["clocked"]) == datetime(2031, 1, 2, 1, 30, tzinfo=UTC)
    listed = admin_client.get("/admin/periodictask/").get_data(as_text=True)
    assert "2031-01-02 09:30:00 +08:00" in listed
    form = admin_client.get("/admin/periodictask/new/").get_data(as_text=True)
    assert "2031-01-02 09:30:00 +08:00</option>" in form  # the picker lists it the same way


def test_only_the_chosen_schedule_type_is_saved(app, admin_client):
    from luffy.models import IntervalSchedule

    with app.app_context():
        interval = IntervalSchedule(every=7, period="seconds")
        db.session.add(interval)
        db.session.commit()
        interval_id = interval.id
    response = periodic_task_form(
        admin_client,
        schedule_kind="crontab",
        interval=str(interval_id),  # left selected in a hidden part of the form
        new_crontab="0 4 * * *",
    )
    assert response.status_code == 302
    saved = only_task(app)
    assert saved["interval"] is None and saved["crontab"] == "0 4 * * *"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"schedule_kind": "interval"}, "请选择一个已有的调度，或在下面新建一个"),
        ({"schedule_kind": "crontab", "new_crontab": "* * *"}, "要有 5 段"),
        ({"schedule_kind": "crontab", "new_crontab": "0 0 31 2 *"}, "crontab"),
        ({"schedule_kind": "weekly"}, "请选择调度类型"),
    ],
)
def test_a_bad_schedule_part_is_refused_with_a_message(app, admin_client, fields, message):
    from luffy.models import PeriodicTask

    response = periodic_task_form(admin_client, **fields)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(PeriodicTask)) == 0


def test_each_row_has_an_enable_switch(app, admin_client):
    from luffy.models import PeriodicTask

    periodic_task_form(admin_client, schedule_kind="interval", new_every="9")
    with app.app_context():
        row_id = db.session.scalar(db.select(PeriodicTask.id))
    html = admin_client.get("/admin/periodictask/").get_data(as_text=True)
    assert f'action="/admin/periodictask/toggle/{row_id}' in html and "已启用" in html
    token = csrf_token_from(html)
    answer = admin_client.post(
        f"/admin/periodictask/toggle/{row_id}",
        data={"enabled": "0", "csrf_token": token},
        headers={"Accept": "application/json"},
    ).get_json()
    assert answer["code"] == 100 and answer["enabled"] is False
    with app.app_context():
        assert db.session.get(PeriodicTask, row_id).enabled is False
    assert admin_client.post(f"/admin/periodictask/toggle/{row_id}").status_code == 400  # CSRF
    missing = admin_client.post(
        "/admin/periodictask/toggle/999999",
        data={"enabled": "1", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert missing.status_code == 404


# -- task results -------------------------------------------------------------------------------
def add_results(app):
    from luffy.models import TaskResult

    with app.app_context():
        db.session.add_all(
            [
                TaskResult(
                    task_id="aaaa1111-0000-0000-0000-000000000001",
                    task_name="tasks.user.send_email",
                    state="FAILURE",
                    args='["\\u79d2\\u6740"]',
                ),
                TaskResult(
                    task_id="bbbb2222-0000-0000-0000-000000000002",
                    task_name="tasks.home.update_banner",
                    state="SUCCESS",
                    args="[]",
                ),
            ]
        )
        db.session.commit()


def test_task_results_read_well(app, admin_client):
    add_results(app)
    html = admin_client.get("/admin/taskresult/").get_data(as_text=True)
    cells = " ".join(re.findall(r'<td class="col-args">\s*(.*?)\s*</td>', html, re.S))
    assert "秒杀" in cells and "\\u79d2" not in cells
    assert 'class="state-badge state-FAILURE"' in html and ">失败</span>" in html
    groups = json.loads(re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', html).group(1))
    assert ["FAILURE", "失败"] in groups["状态"][0]["options"]  # the state filter's choices


def test_task_results_filter_by_state_and_search_by_name(app, admin_client):
    add_results(app)
    failed = admin_client.get("/admin/taskresult/?flt0_0=FAILURE").get_data(as_text=True)
    assert "tasks.user.send_email" in failed and "tasks.home.update_banner" not in failed
    found = admin_client.get("/admin/taskresult/?search=tasks.home.update").get_data(as_text=True)
    assert "tasks.home.update_banner" in found and "tasks.user.send_email" not in found


# -- no inline script anywhere (the Content-Security-Policy allows none) ----------------------
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/courses/",
        "/seckill/",
        "/orders/",
        "/admin/",
        "/admin/banner/",
        "/admin/banner/new/",
        "/admin/periodictask/",
        "/admin/periodictask/new/",
        "/admin/taskresult/",
        "/admin/monitor/",
    ],
)
def test_pages_carry_no_inline_script_or_handler(app, admin_client, url):
    from luffy.models import PeriodicTask

    with app.app_context():
        if not db.session.scalar(db.select(db.func.count()).select_from(PeriodicTask)):
            periodic_task_form(admin_client, schedule_kind="interval", new_every="5")
    html = admin_client.get(url).get_data(as_text=True)
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html).group(0)
    assert not INLINE_HANDLER.search(html), html[INLINE_HANDLER.search(html).start() - 80 :][:200]


def test_the_traceback_page_shows_site_times_and_readable_arguments(app, admin_client):
    from datetime import UTC, datetime

    from luffy.models import TaskResult

    with app.app_context():
        db.session.add(
            TaskResult(
                task_id="tb-1",
                task_name="tasks.user.send_email",
                state="FAILURE",
                args='["\\u8def\\u98de"]',
                traceback="Traceback (most recent call last):\nValueError: boom",
                created_at=datetime(2026, 6, 1, 0, 0, 5, tzinfo=UTC),
                date_done=datetime(2026, 6, 1, 0, 0, 9, tzinfo=UTC),
            )
        )
        db.session.commit()
    html = admin_client.get("/admin/monitor/tasks/tb-1").get_data(as_text=True)
    assert "2026-06-01 08:00:09 +08:00" in html and "T00:00:09" not in html
    assert "路飞" in html and "\\u8def" not in html and ">失败<" in html
