"""Real-browser tests: Debian's Chromium, driven by Playwright, against gunicorn + worker + beat.

Nothing downloads a browser: Playwright launches /usr/bin/chromium (``apt-get install
chromium``; .ci/run does it). Where it is missing these tests are skipped, saying so. On a
failure a screenshot of the page is written to var/screenshots/<test>.png.
"""

import contextlib
import re

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, playwright_or_skip
from conftest import make_user, start_worker, stop_worker
from live_servers import environment, start_celery, start_gunicorn, wait_until
from local_redis import free_port

sync_api = playwright_or_skip()
expect = sync_api.expect


@pytest.fixture(scope="module")
def live_site(app, tmp_path_factory):
    """gunicorn serving wsgi:app, a real worker and beat, on the test session's servers."""
    logs = tmp_path_factory.mktemp("browser")
    env = environment()
    worker = start_worker(app, "-c", "2")
    beat = start_celery("beat", logs, env, "-s", str(logs / "beat-schedule"))
    try:
        server = start_gunicorn(free_port(), logs, env)
    except Exception:
        beat.stop()
        stop_worker(worker)
        raise
    server.worker, server.beat = worker, beat
    yield server
    server.stop()
    beat.stop()
    stop_worker(worker)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, request):
    """Pages in fresh browser contexts (one per user); a screenshot of each if the test fails."""
    contexts = []

    def open_page(label="page"):
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.screenshot_label = label
        contexts.append((context, page))
        return page

    yield open_page
    for context, _page in contexts:
        context.close()


@contextlib.contextmanager
def screenshots_on_failure(name, *pages):
    try:
        yield
    except BaseException as error:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        written = []
        for page in pages:
            path = SCREENSHOTS / f"{name}-{page.screenshot_label}.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(path), full_page=True)
                written.append(str(path))
        error.add_note(f"screenshots: {', '.join(written) or 'none could be taken'}")
        raise


def log_in(page, site, username, password):
    page.goto(site.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def reload_until(page, predicate, timeout=15, message="the page to change"):
    def check():
        page.reload()
        return predicate()

    return wait_until(check, timeout=timeout, interval=0.3, message=message)


def test_admin_edits_a_banner_and_the_home_carousel_changes(app, users, live_site, new_page):
    from luffy.extensions import db
    from luffy.models import Banner

    with app.app_context():
        banner = Banner(title="春季新课", image="/static/img/banners/go.svg", link="/", orders=1)
        db.session.add(banner)
        db.session.commit()
        banner_id = banner.id
    visitor, admin = new_page("home"), new_page("admin")
    with screenshots_on_failure("banner", visitor, admin):
        visitor.goto(live_site.url + "/")
        expect(visitor.locator(".carousel-caption")).to_have_text(["春季新课"])

        log_in(admin, live_site, "root", "root-password")
        admin.goto(f"{live_site.url}/admin/banner/edit/?id={banner_id}")
        admin.fill("input[name=title]", "夏季特惠")
        admin.locator("form.admin-form input[type=submit]").first.click()
        admin.wait_for_url(re.compile(r"/admin/banner/"))
        expect(admin.locator("body")).to_contain_text("夏季特惠")

        # Every gunicorn process re-reads Redis within BANNER_LOCAL_TTL (0.5 s).
        reload_until(
            visitor,
            lambda: visitor.locator(".carousel-caption").all_inner_texts() == ["夏季特惠"],
            timeout=5,
            message="the carousel to show the edited title",
        )
        expect(visitor.locator(".carousel-slide img")).to_have_attribute("alt", "夏季特惠")


def test_flash_sale_buyer_sees_spinner_then_success_and_the_next_buyer_sees_sold_out(
    app, users, live_site, new_page
):
    from seckill_helpers import add_sale

    with app.app_context():
        make_user("second", "second-password")
    course_id, _sale_id = add_sale(app, stock=1, course_name="浏览器秒杀课")
    first, second = new_page("first-buyer"), new_page("second-buyer")
    with screenshots_on_failure("seckill", first, second):
        log_in(first, live_site, "buyer", "buyer-password")
        # Record whether the spinner was ever shown: it may be gone again within a second.
        first.add_init_script("""
            document.addEventListener("DOMContentLoaded", () => {
              const overlay = document.getElementById("seckill-overlay");
              new MutationObserver(() => { if (!overlay.hidden) window.spinnerSeen = true; })
                .observe(overlay, {attributes: true});
            });
        """)
        first.goto(f"{live_site.url}/seckill/{course_id}/")
        expect(first.locator("#seckill-buy")).to_be_enabled()
        first.click("#seckill-buy")
        expect(first.locator("#seckill-message")).to_contain_text("抢购成功", timeout=30_000)
        assert first.evaluate("window.spinnerSeen === true"), "the spinner never showed"
        expect(first.locator(".seckill-spinner")).to_be_attached()
        expect(first.locator("#seckill-overlay")).to_be_hidden()
        expect(first.locator("#seckill-message")).to_have_class(re.compile(r"\bsuccess\b"))

        # The next buyer's page knows at load that the only seat is gone.
        log_in(second, live_site, "second", "second-password")
        second.goto(f"{live_site.url}/seckill/{course_id}/")
        expect(second.locator("#seckill-countdown")).to_have_text("已售罄")
        expect(second.locator("#seckill-buy")).to_be_disabled()
        expect(second.locator("#seckill-stock")).to_have_text("0")


def test_periodic_task_created_in_the_admin_runs_and_shows_in_the_results(
    app, users, live_site, new_page
):
    admin = new_page("admin")
    with screenshots_on_failure("schedule", admin):
        log_in(admin, live_site, "root", "root-password")
        admin.goto(live_site.url + "/admin/intervalschedule/new/")
        admin.fill("input[name=every]", "2")
        admin.select_option("select[name=period]", "seconds")
        admin.locator("form.admin-form input[type=submit]").first.click()
        expect(admin.locator(".alert-success")).to_be_visible()

        admin.goto(live_site.url + "/admin/periodictask/new/")
        admin.fill("input[name=name]", "浏览器测试-刷新轮播图")
        admin.select_option("select[name=task]", "tasks.home.update_banner", force=True)
        admin.select_option("select[name=interval]", label="每 2 秒", force=True)
        admin.locator("form.admin-form input[type=submit]").first.click()
        admin.wait_for_url(re.compile(r"/admin/periodictask/(\?|$)"))
        expect(admin.locator("body")).to_contain_text("浏览器测试-刷新轮播图")

        admin.goto(live_site.url + "/admin/taskresult/")
        row = admin.locator("table tr", has_text="浏览器测试-刷新轮播图")
        reload_until(
            admin,
            lambda: row.count() > 0,
            timeout=45,
            message="a result of the new periodic task in the results view",
        )
        expect(row.first).to_contain_text("tasks.home.update_banner")
