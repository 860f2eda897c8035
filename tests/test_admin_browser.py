"""The admin in Chromium: the banner upload on its own, Chinese words, the schedule-type form,
a one-off schedule shown in the site's zone after saving, result badges and filters, the
dashboard's first paint, and axe-core on the admin's index, list and form pages."""

import re
import struct
import zlib

import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    open_context,
    playwright_or_skip,
    save_artifacts,
    serious_axe_violations,
    sign_in,
)
from conftest import start_worker, stop_worker
from live_servers import environment, start_gunicorn
from local_redis import free_port

sync_api = playwright_or_skip()
expect = sync_api.expect


@pytest.fixture(scope="module")
def site(app, tmp_path_factory):
    """gunicorn serving wsgi:app and one worker (the dashboard and the home list it)."""
    worker = start_worker(app, "-c", "1")
    try:
        server = start_gunicorn(free_port(), tmp_path_factory.mktemp("admin"), environment())
    except Exception:
        stop_worker(worker)
        raise
    server.worker = worker
    yield server
    server.stop()
    stop_worker(worker)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def admin(browser, users, site, request):
    """A page logged in as the admin; its screenshot goes to test-artifacts/ on failure."""
    failures_before = request.session.testsfailed
    context = open_context(browser)
    page = context.new_page()
    sign_in(page, site.url, "root", "root-password")
    yield page
    if request.session.testsfailed > failures_before:
        save_artifacts(request.node.name, page)
    context.close()


def png_bytes():
    """A real 2×2 PNG."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc8\x10\x2e" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def save_form(page):
    page.locator("form.admin-form input[type=submit]").first.click()


def test_a_banner_can_be_created_with_only_an_upload(app, site, admin):
    from luffy.extensions import db
    from luffy.models import Banner

    admin.goto(site.url + "/admin/banner/new/")
    admin.fill("input[name=title]", "只有上传")
    admin.set_input_files(
        "input[name=image_upload]",
        files=[{"name": "banner.png", "mimeType": "image/png", "buffer": png_bytes()}],
    )
    save_form(admin)
    admin.wait_for_url(re.compile(r"/admin/banner/(\?|$)"))
    expect(admin.locator(".alert-success")).to_be_visible()
    with app.app_context():
        image = db.session.scalar(db.select(Banner.image).where(Banner.title == "只有上传"))
    assert image.startswith("/uploads/banners/") and image.endswith(".png")
    admin.goto(site.url + "/")
    expect(admin.locator(".carousel-slide img")).to_have_attribute("src", image)


def test_a_banner_path_of_x_is_refused_in_words(site, admin):
    admin.goto(site.url + "/admin/banner/new/")
    admin.fill("input[name=title]", "坏路径")
    admin.fill("input[name=image]", "x")
    save_form(admin)
    expect(admin.locator("form.admin-form")).to_contain_text("图片地址须是")


def test_the_admin_speaks_chinese(site, admin):
    admin.goto(site.url + "/admin/banner/")
    tabs = admin.locator(".nav-tabs")
    expect(tabs.get_by_role("link", name="新建", exact=True)).to_be_visible()
    expect(tabs).to_contain_text("列表")
    expect(tabs).to_contain_text("添加筛选")
    expect(admin.locator("body")).not_to_contain_text("Create")
    expect(admin.locator("nav")).to_contain_text("时区 Asia/Shanghai")
    expect(admin.get_by_role("link", name="返回网站")).to_be_visible()
    expect(admin.get_by_role("button", name="退出")).to_be_visible()


def test_the_date_picker_is_chinese(site, admin):
    admin.goto(site.url + "/admin/periodictask/new/")
    admin.click("input[name=start_time]")
    picker = admin.locator(".daterangepicker").last
    expect(picker).to_be_visible()
    expect(picker).to_contain_text("确定")
    expect(picker.locator("th", has_text="一").first).to_be_visible()
    expect(picker).not_to_contain_text("Apply")


def test_the_schedule_type_shows_only_its_fields(site, admin):
    admin.goto(site.url + "/admin/periodictask/new/")
    kind = admin.locator("#schedule_kind")
    expect(kind).to_have_value("interval")
    expect(admin.locator("#new_every")).to_be_visible()
    expect(admin.locator("#new_crontab")).to_be_hidden()
    expect(admin.locator("#new_clocked_time")).to_be_hidden()
    kind.select_option("crontab")
    expect(admin.locator("#new_crontab")).to_be_visible()
    expect(admin.locator("#new_every")).to_be_hidden()
    expect(admin.locator("body")).not_to_contain_text("__None")


def test_a_one_off_schedule_is_shown_in_the_site_zone_after_saving(app, site, admin):
    admin.goto(site.url + "/admin/periodictask/new/")
    admin.fill("input[name=name]", "一次性任务")
    admin.select_option("select[name=task]", "tasks.home.update_banner", force=True)
    admin.locator("#schedule_kind").select_option("clocked")
    admin.fill("#new_clocked_time", "2031-05-06 09:30:00")
    admin.keyboard.press("Escape")
    save_form(admin)
    admin.wait_for_url(re.compile(r"/admin/periodictask/(\?|$)"))
    row = admin.locator("table.model-list tr", has_text="一次性任务")
    expect(row).to_contain_text("2031-05-06 09:30:00 +08:00")

    # Switch it off from the list, in place, and back on.
    row.get_by_role("button", name=re.compile("^停用")).click()
    expect(row.locator(".toggle-status")).to_have_text("已停用")
    admin.reload()
    expect(row.locator(".toggle-status")).to_have_text("已停用")
    row.get_by_role("button", name=re.compile("^启用")).click()
    expect(row.locator(".toggle-status")).to_have_text("已启用")


def add_results(app):
    from luffy.extensions import db
    from luffy.models import TaskResult

    with app.app_context():
        for index, state in enumerate(("SUCCESS", "FAILURE", "RETRY")):
            db.session.add(
                TaskResult(
                    task_id=f"c0ffee{index:02d}-0000-0000-0000-000000000000",
                    task_name=f"tasks.demo_{state.lower()}",
                    state=state,
                    args='["\\u8def\\u98de", ' + str(index) + "]",
                )
            )
        db.session.commit()


def test_task_results_show_badges_and_filter_by_state(app, site, admin):
    add_results(app)
    admin.goto(site.url + "/admin/taskresult/")
    expect(admin.locator(".state-badge.state-FAILURE")).to_have_text("失败")
    expect(admin.locator(".state-badge.state-SUCCESS")).to_have_text("成功")
    colours = admin.evaluate(
        """[...document.querySelectorAll('.state-badge')]
             .map(b => getComputedStyle(b).backgroundColor)"""
    )
    assert len(set(colours)) == 3, colours
    expect(admin.locator("td.col-args").first).to_contain_text("路飞")
    # The table fits the page: no sideways scrolling at 1280 px.
    assert admin.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    admin.locator(".nav-tabs").get_by_text("添加筛选").click()
    admin.locator(".field-filters a, a.filter", has_text="状态").first.click()
    select = admin.locator("select.filter-val").last
    expect(select.locator("option", has_text="失败")).to_have_count(1)
    select.select_option("FAILURE", force=True)
    admin.locator("button", has_text="应用").first.click()
    admin.wait_for_url(re.compile(r"flt"))
    expect(admin.locator("table.model-list tbody tr")).to_have_count(1)
    expect(admin.locator("table.model-list")).to_contain_text("tasks.demo_failure")

    admin.goto(site.url + "/admin/taskresult/?search=tasks.demo_retry")
    expect(admin.locator("table.model-list tbody tr")).to_have_count(1)


def test_the_dashboard_shows_loading_first_then_words(site, admin):
    admin.route(
        re.compile(r"/admin/monitor/data"),
        lambda route: (admin.wait_for_timeout(1500), route.continue_()),
    )
    admin.goto(site.url + "/admin/monitor/")
    expect(admin.locator("#workers")).to_contain_text("正在询问工作进程")
    expect(admin.locator("#updated")).to_contain_text("正在加载")
    expect(admin.locator("#updated")).to_contain_text("更新于", timeout=20_000)
    expect(admin.locator("#workers")).to_contain_text(site.worker.hostname)
    expect(admin.locator("#workers")).to_contain_text("在线")
    admin.unroute_all(behavior="ignoreErrors")  # later refreshes go straight through

    unknown = "00000000-dead-beef-0000-000000000000"
    admin.fill("#revoke-id", unknown)
    admin.get_by_role("button", name="撤销任务").click()
    notice = admin.locator("#notice")
    expect(notice).to_contain_text("本站没有发出过任务")
    expect(notice).not_to_contain_text("{")


def test_the_dashboard_charts_are_readable(app, site, admin):
    add_results(app)
    for viewport in (None, PHONE):
        if viewport:
            admin.set_viewport_size(viewport)
        admin.goto(site.url + "/admin/monitor/")
        expect(admin.locator("#state-chart svg")).to_be_visible(timeout=20_000)
        smallest = admin.evaluate(
            """Math.min(...[...document.querySelectorAll('.chart svg text')]
                 .map(t => t.getBoundingClientRect().height))"""
        )
        assert smallest >= 12, smallest
        steps = admin.evaluate(
            "[...document.querySelectorAll('#state-chart svg text')].map(t => t.textContent)"
        )
        assert "失败" in steps and "0" in steps and "1" in steps
        assert admin.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


ADMIN_PAGES = [
    "/admin/",
    "/admin/banner/",
    "/admin/banner/new/",
    "/admin/periodictask/",
    "/admin/periodictask/new/",
    "/admin/taskresult/",
    "/admin/monitor/",
]


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_axe_finds_nothing_serious_in_the_admin(app, site, admin, viewport):
    add_results(app)
    if viewport:
        admin.set_viewport_size(viewport)
    found = {}
    for path in ADMIN_PAGES:
        admin.goto(site.url + path)
        admin.wait_for_load_state("networkidle")
        found[path] = serious_axe_violations(admin)
    assert not any(found.values()), {path: v for path, v in found.items() if v}


def test_batch_actions_and_delete_confirmation_work_without_inline_handlers(app, site, admin):
    from luffy.extensions import db
    from luffy.models import IntervalSchedule, PeriodicTask

    with app.app_context():
        db.session.add(
            PeriodicTask(
                name="批量停用我",
                task="tasks.home.update_banner",
                interval=IntervalSchedule(every=9, period="minutes"),
            )
        )
        db.session.commit()
    admin.goto(site.url + "/admin/periodictask/")
    row = admin.locator("table.model-list tr", has_text="批量停用我")
    admin.once("dialog", lambda dialog: dialog.dismiss())  # "delete?" answered no
    row.locator("form.icon button[data-confirm]").click()
    admin.wait_for_timeout(500)
    expect(row).to_have_count(1)

    row.locator("input.action-checkbox").check()
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.locator(".nav-tabs").get_by_text("批量操作").click()
    admin.get_by_role("button", name="停用", exact=True).click()
    expect(admin.locator(".alert-success")).to_contain_text("已停用 1 个周期任务")
    with app.app_context():
        assert db.session.scalar(db.select(PeriodicTask.enabled)) is False


def test_the_date_picker_starts_from_the_sites_clock_not_the_browsers(browser, users, site):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    context = open_context(browser, timezone_id="America/New_York")  # 12-13 h from the site
    try:
        page = context.new_page()
        sign_in(page, site.url, "root", "root-password")
        page.goto(site.url + "/admin/periodictask/new/")
        page.click("input[name=start_time]")
        page.locator(".daterangepicker .applyBtn").last.click()
        typed = datetime.strptime(page.input_value("input[name=start_time]"), "%Y-%m-%d %H:%M:%S")
        site_now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
        assert abs(typed - site_now) < timedelta(minutes=3), (typed, site_now)
    finally:
        context.close()
