"""The storefront over HTTP: menu, courses, the sale list and status, orders, login redirects."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import csrf_token_from, login, make_user
from live_servers import wait_until
from seckill_helpers import add_sale, buy, logged_in_client

from luffy.extensions import db
from luffy.models import Course, Order

MENU = ("首页", "全部课程", "限时秒杀")


def add_course(app, name, price="199.00", **fields):
    with app.app_context():
        course = Course(name=name, price=price, **fields)
        db.session.add(course)
        db.session.commit()
        return course.id


def menu_of(html):
    match = re.search(r'<nav class="site-menu".*?</nav>', html, re.S)
    assert match, "no site menu"
    return match.group(0)


@pytest.mark.parametrize("url", ["/", "/courses/", "/seckill/", "/login"])
def test_every_page_has_the_site_menu_for_a_visitor(app, client, url):
    response = client.get(url)
    assert response.status_code == 200
    menu = menu_of(response.get_data(as_text=True))
    for label in (*MENU, "登录"):
        assert f">{label}<" in menu
    assert "我的订单" not in menu and "退出" not in menu


def test_the_menu_offers_orders_and_logout_once_logged_in(app, buyer_client):
    menu = menu_of(buyer_client.get("/courses/").get_data(as_text=True))
    for label in (*MENU, "我的订单", "退出"):
        assert f">{label}<" in menu
    assert 'aria-current="page">全部课程' in menu


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert b"<svg" in response.data


def test_home_shows_course_cards_and_the_live_sale(app, client):
    add_course(app, "Linux 运维", price="299.00", cover_image="/static/img/courses/linux.svg")
    course_id, _ = add_sale(app, stock=5, course_name="秒杀 Python", price="9.90")
    html = client.get("/").get_data(as_text=True)
    assert "Linux 运维" in html and "¥299.00" in html
    assert f'href="/seckill/{course_id}/"' in html
    assert "¥9.90" in html and re.search(r'class="seats-left">5</span> / 5', html)


def test_course_list_and_page(app, client):
    course_id = add_course(app, "Go 微服务", price="399.00", description="从零写一个服务")
    assert "Go 微服务" in client.get("/courses/").get_data(as_text=True)
    page = client.get(f"/courses/{course_id}/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "从零写一个服务" in html and "¥399.00" in html
    assert "去秒杀" not in html  # no sale on this course


def test_course_page_shows_its_running_sale(app, client):
    course_id, _ = add_sale(app, stock=3, course_name="秒杀课", price="19.90")
    html = client.get(f"/courses/{course_id}/").get_data(as_text=True)
    assert "¥19.90" in html and "去秒杀" in html and "秒杀进行中" in html


@pytest.mark.parametrize("url", ["/courses/999/", "/courses/0/", "/courses/99999999999999/"])
def test_unknown_course_is_a_404(app, client, url):
    assert client.get(url).status_code == 404


def test_sale_list_shows_running_and_upcoming_sales_but_not_ended_ones(app, client):
    running, _ = add_sale(app, stock=2, course_name="进行中的课")
    upcoming, _ = add_sale(app, stock=2, starts_in=3600, ends_in=7200, course_name="将开始的课")
    ended, _ = add_sale(app, stock=2, starts_in=-7200, ends_in=-3600, course_name="已结束的课")
    html = client.get("/seckill/").get_data(as_text=True)
    assert f"/seckill/{running}/" in html and f"/seckill/{upcoming}/" in html
    assert f"/seckill/{ended}/" not in html
    assert "即将开始" in html and "秒杀进行中" in html


def test_sale_status_follows_a_sell_out(app, users):
    course_id, _ = add_sale(app, stock=1, course_name="只剩一个")
    client = logged_in_client(app, users["buyer"])
    status = client.get(f"/api/v1/seckill/{course_id}/status/").get_json()
    assert (status["code"], status["stock"], status["total"], status["state"]) == (
        100,
        1,
        1,
        "running",
    )
    assert buy(client, course_id).get_json()["code"] == 100

    # The answer is shared for up to a second (STATUS_SECONDS): it follows within a moment.
    def state():
        return client.get(f"/api/v1/seckill/{course_id}/status/").get_json()

    wait_until(lambda: state()["state"] == "soldout", timeout=10, message="sold out")
    status = state()
    assert (status["stock"], status["state_text"]) == (0, "已售罄")


def test_sale_page_renders_sold_out_at_load(app, users):
    course_id, _ = add_sale(app, stock=1, course_name="秒光了")
    assert buy(logged_in_client(app, users["buyer"]), course_id).get_json()["code"] == 100
    with app.app_context():
        other = make_user("late", "late-password")
    html = logged_in_client(app, other).get(f"/seckill/{course_id}/").get_data(as_text=True)
    assert re.search(r'id="seckill-stock">0</span> / 1', html)
    assert re.search(r'id="seckill-countdown"[^>]*>\s*已售罄', html)
    assert re.search(r'<button[^>]*id="seckill-buy"[^>]*disabled', html)


def test_sale_status_of_an_ended_sale_and_of_a_course_without_one(app, client):
    course_id, _ = add_sale(app, stock=1, starts_in=-7200, ends_in=-3600, course_name="结束了")
    assert client.get(f"/api/v1/seckill/{course_id}/status/").get_json()["state"] == "ended"
    response = client.get("/api/v1/seckill/424242/status/")
    assert response.status_code == 404 and response.get_json()["code"] == 104


def test_orders_require_login(client):
    response = client.get("/orders/")
    assert response.status_code == 302 and "/login?next=/orders/" in response.headers["Location"]


def test_orders_show_only_the_users_own_newest_first_in_the_site_zone(app, users, buyer_client):
    first = add_sale(app, stock=5, course_name="先买的课")
    second = add_sale(app, stock=5, course_name="后买的课")
    with app.app_context():
        other = make_user("other", "other-password")
        moment = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)  # 09:30 in Asia/Shanghai
        for user_id, (course_id, sale_id), minutes, ticket in (
            (users["buyer"], first, 0, "a" * 32),
            (users["buyer"], second, 5, "b" * 32),
            (other, second, 9, "c" * 32),
        ):
            db.session.add(
                Order(
                    ticket=ticket,
                    user_id=user_id,
                    course_id=course_id,
                    sale_id=sale_id,
                    price="9.90",
                    created_at=moment + timedelta(minutes=minutes),
                )
            )
        db.session.commit()
    html = buyer_client.get("/orders/").get_data(as_text=True)
    assert html.index("后买的课") < html.index("先买的课")
    assert "2026-03-01 09:35:00" in html and "2026-03-01 09:30:00" in html
    assert html.count("data-order-id") == 2
    assert "Asia/Shanghai" in html


def login_response(client, username, password, next_url=None):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        query_string={"next": next_url} if next_url else None,
        data={"username": username, "password": password, "csrf_token": token},
    )


def test_login_goes_back_to_next(app, users, client):
    response = login_response(client, "buyer", "buyer-password", "/orders/")
    assert response.headers["Location"] == "/orders/"


def test_an_admin_lands_on_the_admin_without_next(app, users, client):
    assert login_response(client, "root", "root-password").headers["Location"] == "/admin/"


def test_a_buyer_lands_on_the_home_page_without_next(app, users, client):
    assert login_response(client, "buyer", "buyer-password").headers["Location"] == "/"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "/\\evil.example/", "https://evil.example/", "javascript:x"]
)
def test_login_never_follows_an_off_site_next(app, users, client, target):
    assert login_response(client, "root", "root-password", target).headers["Location"] == "/admin/"


def test_the_sale_page_links_its_success_message_to_the_orders(app, users):
    course_id, _ = add_sale(app, stock=1, course_name="带链接")
    client = login(app.test_client(), "buyer", "buyer-password")
    html = client.get(f"/seckill/{course_id}/").get_data(as_text=True)
    assert 'data-orders-url="/orders/"' in html


def test_home_keeps_its_carousel_when_the_database_is_away(app, client, tmp_path):
    from conftest import restore_celery

    from config import TestingConfig
    from luffy import create_app
    from luffy.models import Banner

    with app.app_context():
        db.session.add(Banner(title="库挂了也在", image="/static/img/banners/go.svg", orders=1))
        db.session.commit()
    assert "库挂了也在" in client.get("/").get_data(as_text=True)  # now in Redis too

    class NoDatabase(TestingConfig):
        def __init__(self):
            super().__init__()
            # A SQLite file in a folder that does not exist: every query fails.
            self.SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'missing' / 'luffy.db'}"

    away = create_app(NoDatabase)
    restore_celery(app)
    response = away.test_client().get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "库挂了也在" in html and "课程暂时无法加载" in html


def test_orders_follow_the_configured_timezone(app, users):
    from conftest import restore_celery

    from config import TestingConfig
    from luffy import create_app

    course_id, sale_id = add_sale(app, stock=5, course_name="纽约时间")
    with app.app_context():
        db.session.add(
            Order(
                ticket="e" * 32,
                user_id=users["buyer"],
                course_id=course_id,
                sale_id=sale_id,
                price="9.90",
                created_at=datetime(2026, 3, 1, 1, 30, tzinfo=UTC),
            )
        )
        db.session.commit()

    class NewYork(TestingConfig):
        def __init__(self):
            super().__init__()
            self.TIMEZONE = "America/New_York"

    other = create_app(NewYork)
    restore_celery(app)
    html = (
        login(other.test_client(), "buyer", "buyer-password").get("/orders/").get_data(as_text=True)
    )
    assert "2026-02-28 20:30:00" in html and "America/New_York" in html
