"""The dashboard in a real browser (Debian's Chromium through Playwright): it refreshes by itself.

Skipped, saying why, where Chromium or Playwright is missing (tests/browser_helpers.py).
"""

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, playwright_or_skip
from conftest import start_worker, stop_worker
from live_servers import environment, start_gunicorn
from local_redis import free_port

sync_api = playwright_or_skip()
expect = sync_api.expect


@pytest.fixture(scope="module")
def site(app, tmp_path_factory):
    worker = start_worker(app, "-c", "1")
    try:
        server = start_gunicorn(free_port(), tmp_path_factory.mktemp("dashboard"), environment())
    except Exception:
        stop_worker(worker)
        raise
    server.worker = worker
    yield server
    server.stop()
    stop_worker(worker)


@pytest.fixture
def page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def test_dashboard_shows_the_worker_and_a_new_failure_without_a_reload(app, users, site, page):
    page.goto(site.url + "/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "root-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    try:
        page.goto(site.url + "/admin/monitor/")
        expect(page.locator("#workers")).to_contain_text(site.worker.hostname)
        expect(page.locator("#workers")).to_contain_text("在线")
        expect(page.locator("#queues")).to_contain_text("periodic")
        expect(page.locator("#state-chart svg")).to_be_visible()
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        result = app.extensions["celery"].send_task("tests.fails", args=["browser"])
        result.get(timeout=30, propagate=False)
        expect(page.locator("#failures")).to_contain_text("boom browser")
        assert page.evaluate("window.__sameDocument") is True
        expect(
            page.locator('#state-chart rect[data-state="FAILURE"][data-window="hour"]')
        ).to_have_attribute("data-count", "1")

        page.locator("#failures a", has_text="异常堆栈").first.click()
        expect(page.locator("pre.traceback")).to_contain_text("RuntimeError: boom browser")
    except BaseException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
        raise
