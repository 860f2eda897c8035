"""The storefront in Chromium: sold-out state at load and live, menu and pages, login redirects,
the carousel's accessibility, and axe-core on every page. Phone-size screenshots of the home and
sale pages are kept under test-artifacts/ when a test fails."""

import contextlib
import re

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
from conftest import make_user, start_worker, stop_worker
from live_servers import environment, start_gunicorn, wait_until
from local_redis import free_port
from seckill_helpers import add_sale, buy, logged_in_client

sync_api = playwright_or_skip()
expect = sync_api.expect


@pytest.fixture(scope="module")
def site(app, tmp_path_factory):
    """gunicorn serving wsgi:app and a real worker (orders are made by the order task)."""
    worker = start_worker(app, "-c", "2")
    try:
        server = start_gunicorn(free_port(), tmp_path_factory.mktemp("store"), environment())
    except Exception:
        stop_worker(worker)
        raise
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
def pages(browser, request):
    """Open pages (each in its own context); on failure their screenshots go to test-artifacts/."""
    opened = []
    failures_before = request.session.testsfailed

    def open_page(**options):
        context = open_context(browser, **options)
        page = context.new_page()
        opened.append((context, page))
        return page

    yield open_page
    if request.session.testsfailed > failures_before:  # this test's call failed
        save_artifacts(request.node.name, *(page for _, page in opened))
    for context, _page in opened:
        context.close()


@contextlib.contextmanager
def phone_artifacts(name, page):
    """Keep a phone-size screenshot of ``page`` under test-artifacts/ if the block fails."""
    try:
        yield
    except BaseException as error:
        error.add_note(f"screenshots: {save_artifacts(name, page)}")
        raise


def test_a_sold_out_sale_renders_sold_out_after_a_reload(app, users, site, pages):
    course_id, _ = add_sale(app, stock=1, course_name="售罄重载课")
    assert buy(logged_in_client(app, users["buyer"]), course_id).get_json()["code"] == 100
    with app.app_context():
        make_user("late", "late-password")
    page = pages(viewport=PHONE)
    with phone_artifacts("sale-sold-out-phone", page):
        sign_in(page, site.url, "late", "late-password")
        page.goto(f"{site.url}/seckill/{course_id}/")
        page.reload()
        expect(page.locator("#seckill-stock")).to_have_text("0")
        expect(page.locator("#seckill-countdown")).to_have_text("已售罄")
        expect(page.locator("#seckill-buy")).to_be_disabled()
        page.wait_for_timeout(2500)  # a status round later it still says so
        expect(page.locator("#seckill-buy")).to_be_disabled()
        expect(page.locator("#seckill-countdown")).to_have_text("已售罄")


def test_the_seat_count_follows_the_sale_while_the_page_is_open(app, users, site, pages):
    course_id, _ = add_sale(app, stock=2, course_name="实时名额课")
    with app.app_context():
        first, second = (make_user(name, f"{name}-password") for name in ("early", "later"))
    page = pages()
    sign_in(page, site.url, "buyer", "buyer-password")
    page.goto(f"{site.url}/seckill/{course_id}/")
    expect(page.locator("#seckill-stock")).to_have_text("2")
    expect(page.locator("#seckill-buy")).to_be_enabled()

    assert buy(logged_in_client(app, first), course_id).get_json()["code"] == 100
    expect(page.locator("#seckill-stock")).to_have_text("1", timeout=10_000)
    expect(page.locator("#seckill-buy")).to_be_enabled()

    assert buy(logged_in_client(app, second), course_id).get_json()["code"] == 100
    expect(page.locator("#seckill-stock")).to_have_text("0", timeout=10_000)
    expect(page.locator("#seckill-countdown")).to_have_text("已售罄")
    expect(page.locator("#seckill-buy")).to_be_disabled()


def test_an_ended_sale_says_so_with_the_button_off(app, users, site, pages):
    course_id, _ = add_sale(app, stock=3, starts_in=-60, ends_in=4, course_name="即将结束课")
    page = pages()
    sign_in(page, site.url, "buyer", "buyer-password")
    page.goto(f"{site.url}/seckill/{course_id}/")
    expect(page.locator("#seckill-countdown")).to_contain_text("已结束", timeout=15_000)
    expect(page.locator("#seckill-buy")).to_be_disabled()
    page.reload()
    expect(page.locator("#seckill-countdown")).to_contain_text("已结束")
    expect(page.locator("#seckill-buy")).to_be_disabled()


def test_a_purchase_links_to_the_orders_page_with_the_order_on_top(app, users, site, pages):
    course_id, _ = add_sale(app, stock=3, course_name="买完看订单", price="6.60")
    page = pages()
    sign_in(page, site.url, "buyer", "buyer-password")
    page.goto(f"{site.url}/seckill/{course_id}/")
    page.click("#seckill-buy")
    message = page.locator("#seckill-message")
    expect(message).to_contain_text("抢购成功", timeout=30_000)
    message.get_by_role("link", name="查看我的订单").click()
    page.wait_for_url(re.compile(r"/orders/$"))
    first_row = page.locator("table.orders tbody tr").first
    expect(first_row).to_contain_text("买完看订单")
    expect(first_row).to_contain_text("¥6.60")


def test_the_menu_leads_to_every_page(app, users, site, pages):
    add_sale(app, stock=2, course_name="菜单里的课")
    page = pages()
    page.goto(site.url + "/")
    menu = page.get_by_role("navigation", name="网站导航")
    expect(menu.get_by_role("link", name="我的订单")).to_have_count(0)
    menu.get_by_role("link", name="全部课程").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("全部课程")
    page.get_by_role("link", name="菜单里的课").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("菜单里的课")
    expect(page.get_by_text("去秒杀")).to_be_visible()
    menu.get_by_role("link", name="限时秒杀").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("限时秒杀")
    expect(page.locator(".sale-card")).to_contain_text(["菜单里的课"])
    menu.get_by_role("link", name="登录").click()
    page.fill("input[name=username]", "buyer")
    page.fill("input[name=password]", "buyer-password")
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/seckill/$"))  # back where the visitor was
    menu.get_by_role("link", name="我的订单").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("我的订单")
    menu.get_by_role("button", name="退出").click()
    expect(menu.get_by_role("link", name="登录")).to_be_visible()
    menu.get_by_role("link", name="首页").click()
    expect(page.locator(".carousel")).to_be_attached()


def test_login_returns_to_next_and_sends_an_admin_to_the_admin(app, users, site, pages):
    visitor = pages()
    visitor.goto(site.url + "/orders/")
    visitor.wait_for_url(re.compile(r"/login\?next="))
    visitor.fill("input[name=username]", "buyer")
    visitor.fill("input[name=password]", "buyer-password")
    visitor.click("form button[type=submit]")
    visitor.wait_for_url(re.compile(r"/orders/$"))

    admin = pages()
    sign_in(admin, site.url, "root", "root-password")
    assert re.search(r"/admin/$", admin.url), admin.url


def add_banners(app, count):
    from luffy.extensions import db
    from luffy.models import Banner

    images = ("python", "linux", "go", "data")
    with app.app_context():
        for index in range(count):
            db.session.add(
                Banner(
                    title=f"横幅 {index + 1}",
                    image=f"/static/img/banners/{images[index % 4]}.svg",
                    link="/courses/",
                    orders=index,
                )
            )
        db.session.commit()


def active_index(page):
    return page.evaluate(
        "[...document.querySelectorAll('.carousel-slide')]"
        ".findIndex(s => s.classList.contains('active'))"
    )


def test_carousel_slides_out_of_view_are_not_tabbable_and_dots_are_big(app, site, pages):
    add_banners(app, 3)
    page = pages(viewport=PHONE)
    with phone_artifacts("home-carousel-phone", page):
        page.goto(site.url + "/")
        expect(page.locator(".carousel-slide")).to_have_count(3)
        focusable = page.evaluate(
            """[...document.querySelectorAll('.carousel-slide a')].map(a => {
                 a.focus(); return document.activeElement === a; })"""
        )
        assert focusable.count(True) == 1, focusable
        assert focusable[active_index(page)] is True
        for box in (dot.bounding_box() for dot in page.locator(".carousel-dot").all()):
            assert box["width"] >= 24 and box["height"] >= 24, box
        # The caption sits below the picture: it never covers the banner's own text.
        image = page.locator(".carousel-slide.active img").bounding_box()
        caption = page.locator(".carousel-slide.active .carousel-caption").bounding_box()
        assert caption["y"] >= image["y"] + image["height"] - 1, (image, caption)


def test_carousel_pause_button_stops_the_rotation(app, site, pages):
    add_banners(app, 3)
    page = pages()
    page.goto(site.url + "/")
    expect(page.locator(".carousel")).to_have_attribute("data-rotating", "true")
    pause = page.get_by_role("button", name="暂停轮播")
    pause.click()
    expect(page.locator(".carousel-pause")).to_have_attribute("aria-pressed", "true")
    page.mouse.move(0, 0)  # the pointer leaves the carousel: still paused
    expect(page.locator(".carousel")).to_have_attribute("data-rotating", "false")
    shown = active_index(page)
    page.wait_for_timeout(5000)
    assert active_index(page) == shown


def test_reduced_motion_keeps_the_carousel_still(app, site, pages):
    add_banners(app, 3)
    page = pages(reduced_motion="reduce")
    page.goto(site.url + "/")
    expect(page.locator(".carousel")).to_have_attribute("data-rotating", "false")
    page.wait_for_timeout(5000)
    assert active_index(page) == 0
    normal = pages()
    normal.goto(site.url + "/")
    expect(normal.locator(".carousel")).to_have_attribute("data-rotating", "true")
    normal.mouse.move(0, 0)
    # Polled from here: the page's Content-Security-Policy refuses wait_for_function's eval.
    wait_until(lambda: active_index(normal) != 0, timeout=15, message="the carousel to move")


def test_the_favicon_loads(site, pages):
    page = pages()
    response = page.goto(site.url + "/favicon.ico")
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg")


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_axe_finds_nothing_serious_on_the_storefront(app, users, site, pages, viewport):
    add_banners(app, 2)
    course_id, _ = add_sale(app, stock=2, course_name="无障碍课")
    page = pages(**({"viewport": viewport} if viewport else {}))
    found = {}
    page.goto(site.url + "/login")
    found["login"] = serious_axe_violations(page)
    sign_in(page, site.url, "buyer", "buyer-password")
    for path in ("/", "/courses/", f"/courses/{course_id}/", "/seckill/", f"/seckill/{course_id}/"):
        page.goto(site.url + path)
        found[path] = serious_axe_violations(page)
    page.goto(f"{site.url}/seckill/{course_id}/")
    page.click("#seckill-buy")
    expect(page.locator("#seckill-message")).to_contain_text("抢购成功", timeout=30_000)
    found["sale page after buying"] = serious_axe_violations(page)
    page.goto(site.url + "/orders/")
    found["/orders/"] = serious_axe_violations(page)
    assert not any(found.values()), {path: v for path, v in found.items() if v}
