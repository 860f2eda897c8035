"""The site's pages work in Chromium under the Content-Security-Policy: scripts from /static/
run, and the browser reports no policy violation (luffy/headers.py)."""

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip
from conftest import make_user
from live_servers import environment, start_gunicorn
from local_redis import free_port
from seckill_helpers import add_sale

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def site(app, tmp_path_factory):
    server = start_gunicorn(free_port(), tmp_path_factory.mktemp("csp"), environment())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def watched_page(browser):
    """A page that records CSP violations (reported by Chromium and by the page's event) and
    uncaught script errors."""
    page = browser.new_context(locale="zh-CN").new_page()
    page.set_default_timeout(15_000)
    page.problems = []

    def on_console(message):
        text = message.text
        if "Content Security Policy" in text or "CSP violation" in text or "Refused to" in text:
            page.problems.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.problems.append(f"script error: {error}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e =>"
        " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return page


def test_home_and_sale_pages_run_their_scripts_without_csp_violations(app, site, browser):
    from luffy.extensions import db
    from luffy.models import Banner

    with app.app_context():
        make_user("shopper", "shopper-password")
        for i in (1, 2):
            db.session.add(
                Banner(title=f"b{i}", image="/static/img/banners/go.svg", link="/", orders=i)
            )
        db.session.commit()
    course_id, _ = add_sale(app, stock=5)
    page = watched_page(browser)
    response = page.goto(site.url + "/")
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    # carousel.js ran: the next arrow (wired by the script) moves to the second slide.
    page.click(".carousel-next")
    sync_api.expect(page.locator(".carousel-slide.active")).to_have_text("b2")

    page.goto(site.url + "/login")
    page.fill("input[name=username]", "shopper")
    page.fill("input[name=password]", "shopper-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"{site.url}/seckill/{course_id}/")
    # seckill.js ran: it writes the countdown.
    sync_api.expect(page.locator("#seckill-countdown")).to_contain_text("距结束还有")
    page.wait_for_timeout(500)
    assert page.problems == []


def test_admin_pages_work_under_their_policy(app, site, browser):
    with app.app_context():
        make_user("boss", "boss-password", is_admin=True)
    page = watched_page(browser)
    page.goto(site.url + "/login")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "boss-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    for path in ("/admin/", "/admin/banner/", "/admin/banner/new/", "/admin/monitor/"):
        response = page.goto(site.url + path)
        assert response.status == 200, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
    assert page.problems == []
