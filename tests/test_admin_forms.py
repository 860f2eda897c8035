"""Admin forms over HTTP: the banner image (upload or path), Chinese words, times in TIMEZONE."""

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
