"""The banner API, the home page and the banner cache's consistency rules."""

import threading
import time

import pytest
from conftest import csrf_token_from
from sqlalchemy import event, text

from luffy.extensions import db
from luffy.models import Banner


def add_banners(app, *specs):
    with app.app_context():
        for spec in specs:
            db.session.add(Banner(**{"image": "/static/img/banners/go.svg", **spec}))
        db.session.commit()


class QueryCounter:
    """Counts SQL statements on the app's engine that read the banners table."""

    def __init__(self, engine):
        self.engine = engine
        self.count = 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn, cursor, statement, *args):
        if "FROM banners" in statement:
            self.count += 1


def engine_of(app):
    with app.app_context():
        return db.engine


def banner_titles(client):
    response = client.get("/api/v1/home/banners/")
    assert response.status_code == 200
    body = response.get_json()
    assert body["code"] == 100
    return [item["title"] for item in body["results"]]


def test_api_filters_orders_and_limits(app, client, monkeypatch):
    add_banners(
        app,
        {"title": "third", "orders": 3},
        {"title": "first", "orders": 1},
        {"title": "hidden", "orders": 0, "is_show": False},
        {"title": "deleted", "orders": 0, "is_delete": True},
        {"title": "second", "orders": 2},
    )
    body = client.get("/api/v1/home/banners/").get_json()
    assert [b["title"] for b in body["results"]] == ["first", "second", "third"]
    assert set(body["results"][0]) == {"id", "title", "image", "link", "orders"}

    monkeypatch.setitem(app.config, "BANNER_COUNT", 2)
    with app.app_context():
        app.extensions["luffy_banner_cache"].rebuild()
    assert banner_titles(client) == ["first", "second"]


def test_empty_list_is_cached(app, client, redis_client):
    assert banner_titles(client) == []
    assert redis_client.exists("luffy:cache:home:banners")
    app.extensions["luffy_banner_cache"].forget_local_copy()
    with QueryCounter(engine_of(app)) as queries:
        assert banner_titles(client) == []
    assert queries.count == 0


def test_cache_hit_reads_no_database(app, client):
    add_banners(app, {"title": "cached", "orders": 1})
    assert banner_titles(client) == ["cached"]
    with QueryCounter(engine_of(app)) as queries:
        assert banner_titles(client) == ["cached"]  # this process's copy
        app.extensions["luffy_banner_cache"].forget_local_copy()
        assert banner_titles(client) == ["cached"]  # Redis, as another process would
    assert queries.count == 0


def test_home_page_renders_the_carousel(app, client):
    add_banners(
        app, {"title": "Python 课程", "orders": 1, "link": "/x"}, {"title": "Go 课程", "orders": 2}
    )
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.index("Python 课程") < html.index("Go 课程")
    assert 'class="carousel"' in html and "js/carousel.js" in html
    assert "//cdn" not in html and "https://" not in html


def test_raw_database_change_is_not_seen_until_the_refresh_task(app, client, worker):
    from tasks.home import update_banner

    add_banners(app, {"title": "before", "orders": 1})
    assert banner_titles(client) == ["before"]
    with app.app_context():
        db.session.execute(text("UPDATE banners SET title = 'after'"))  # skips ORM events
        db.session.commit()
    app.extensions["luffy_banner_cache"].forget_local_copy()
    assert banner_titles(client) == ["before"]  # still served from Redis

    update_banner.delay().get(timeout=30)  # what beat runs every BANNER_REFRESH_SECONDS
    app.extensions["luffy_banner_cache"].forget_local_copy()
    assert banner_titles(client) == ["after"]


def test_refresh_task_is_in_the_beat_schedule(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    entry = next(e for e in schedule.values() if e["task"] == "tasks.home.update_banner")
    assert float(entry["schedule"]) == app.config["BANNER_REFRESH_SECONDS"]


def admin_form(admin_client, url):
    return csrf_token_from(admin_client.get(url).get_data(as_text=True))


def test_admin_create_edit_delete_rebuild_the_cache_in_every_process(app, client, admin_client):
    from config import TestingConfig
    from luffy import create_app

    other = create_app(TestingConfig).test_client()  # stands in for another gunicorn worker
    assert banner_titles(other) == []

    token = admin_form(admin_client, "/admin/banner/new/")
    response = admin_client.post(
        "/admin/banner/new/",
        data={
            "title": "新横幅",
            "image": "/static/img/banners/go.svg",
            "link": "/",
            "orders": "1",
            "is_show": "y",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert banner_titles(client) == ["新横幅"]  # the writing process: at once

    def seen_by_other_within_a_second(expected):
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if banner_titles(other) == expected:
                return True
            time.sleep(0.05)
        return False

    assert seen_by_other_within_a_second(["新横幅"])

    with app.app_context():
        banner_id = db.session.scalar(db.select(Banner.id))
    token = admin_form(admin_client, f"/admin/banner/edit/?id={banner_id}")
    response = admin_client.post(
        f"/admin/banner/edit/?id={banner_id}",
        data={
            "title": "改过的",
            "image": "/static/img/banners/go.svg",
            "link": "/",
            "orders": "1",
            "is_show": "y",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert banner_titles(client) == ["改过的"]
    assert seen_by_other_within_a_second(["改过的"])

    token = admin_form(admin_client, "/admin/banner/")
    response = admin_client.post(
        "/admin/banner/delete/", data={"id": banner_id, "csrf_token": token}
    )
    assert response.status_code == 302
    assert banner_titles(client) == []
    assert seen_by_other_within_a_second([])


def test_admin_upload_stores_image_and_serves_it(app, client, admin_client):
    import io

    from PIL import Image

    original = io.BytesIO()
    Image.new("RGB", (8, 4), (255, 102, 0)).save(original, "PNG")
    png = original.getvalue()
    token = admin_form(admin_client, "/admin/banner/new/")
    response = admin_client.post(
        "/admin/banner/new/",
        data={
            "title": "上传的",
            "link": "/",
            "orders": "1",
            "is_show": "y",
            "csrf_token": token,
            "image_upload": (io.BytesIO(png), "banner.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    image = client.get("/api/v1/home/banners/").get_json()["results"][0]["image"]
    assert image.startswith("/uploads/banners/") and image.endswith(".png")
    served = client.get(image)
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    stored = Image.open(io.BytesIO(served.data))  # a re-encoded copy of the same picture
    assert stored.format == "PNG" and stored.size == (8, 4)
    assert stored.convert("RGB").getpixel((0, 0)) == (255, 102, 0)


def test_admin_upload_refuses_a_non_image(app, admin_client):
    import io

    token = admin_form(admin_client, "/admin/banner/new/")
    response = admin_client.post(
        "/admin/banner/new/",
        data={
            "title": "坏文件",
            "link": "/",
            "orders": "1",
            "csrf_token": token,
            "image_upload": (io.BytesIO(b"<svg onload=alert(1)>"), "x.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert "不是有效的图片" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Banner.id))) == 0


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("title", "长" * 65, "64"),
        ("link", "javascript:alert(1)", "链接必须以"),
        ("orders", "abc", "不是有效的整数"),  # WTForms speaks Chinese (Flask-Babel)
    ],
)
def test_admin_banner_form_refuses_bad_input(app, admin_client, field, value, message):
    data = {"title": "ok", "image": "/static/img/banners/go.svg", "link": "/", "orders": "1"}
    data[field] = value
    data["csrf_token"] = admin_form(admin_client, "/admin/banner/new/")
    response = admin_client.post("/admin/banner/new/", data=data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Banner.id))) == 0


def test_one_request_rebuilds_a_missing_key(app):
    """Twenty processes miss at once: the database is read about once, not twenty times."""
    from luffy.home.banners import BannerCache

    add_banners(app, {"title": "hot", "orders": 1})
    caches = [BannerCache() for _ in range(20)]  # twenty cold processes
    results, barrier = [], threading.Barrier(20)

    def read(cache):
        with app.app_context():
            barrier.wait()
            results.append([b["title"] for b in cache.banners()])

    with QueryCounter(engine_of(app)) as queries:
        threads = [threading.Thread(target=read, args=(c,)) for c in caches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [["hot"]] * 20
    assert queries.count <= 2


def test_redis_down_serves_the_database_in_bounded_time(app, monkeypatch, caplog):
    from local_redis import free_port

    from config import TestingConfig
    from luffy import create_app

    closed = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    broken = create_app(TestingConfig)
    with broken.app_context():
        db.session.add(Banner(title="from-db", image="/x.png", orders=1))
        db.session.commit()  # the rebuild after commit fails quietly: Redis is down
    client = broken.test_client()
    for _ in range(3):
        started = time.monotonic()
        response = client.get("/api/v1/home/banners/")
        assert response.status_code == 200
        assert [b["title"] for b in response.get_json()["results"]] == ["from-db"]
        assert time.monotonic() - started < 1.0
        broken.extensions["luffy_banner_cache"].forget_local_copy()
    started = time.monotonic()
    assert client.get("/").status_code == 200
    assert time.monotonic() - started < 1.0
    assert "Redis unavailable" in caplog.text

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["services"]["redis"]["ok"] is False
    assert "redis" in health.get_json()["msg"]
    with broken.app_context():
        db.session.execute(db.delete(Banner))
        db.session.commit()


def test_redis_down_with_a_blackholed_address_is_bounded(app, monkeypatch):
    """A Redis that never answers (not even a refusal) still costs at most the socket timeout."""
    import socket

    from config import TestingConfig
    from luffy import create_app

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts into the backlog, never answers
    port = silent.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    try:
        broken = create_app(TestingConfig)
        client = broken.test_client()
        started = time.monotonic()
        assert client.get("/api/v1/home/banners/").status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        silent.close()
