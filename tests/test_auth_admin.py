"""Login, logout, CSRF, and the admin's access rule."""

import pytest
from conftest import csrf_token_from, login

ADMIN_URLS = ["/admin/", "/admin/banner/", "/admin/banner/new/", "/admin/course/", "/admin/user/"]


def test_login_and_logout(app, users):
    client = app.test_client()
    login(client, "buyer", "buyer-password")
    assert "buyer" in client.get("/").get_data(as_text=True)
    token = csrf_token_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert "登录" in client.get("/").get_data(as_text=True)


def test_wrong_password_is_refused_with_a_message(app, users, client):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "buyer", "password": "nope", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "用户名或密码错误" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(app, users, client):
    response = client.post("/login", data={"username": "buyer", "password": "buyer-password"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_oversized_login_fields_are_refused(app, users, client):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "x" * 500, "password": "y", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "64" in response.get_data(as_text=True)


def test_login_never_redirects_off_site(app, users, client):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": "buyer", "password": "buyer-password", "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_requires_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_refuses_non_admin_users(buyer_client, url):
    assert buyer_client.get(url).status_code == 403


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_serves_admin_users(admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_admin_post_without_csrf_is_refused(app, admin_client):
    response = admin_client.post(
        "/admin/banner/new/", data={"title": "x", "image": "/x.png", "orders": "1"}
    )
    assert response.status_code == 400


def test_user_admin_hides_password_hash_and_sets_password(app, admin_client):
    page = admin_client.get("/admin/user/").get_data(as_text=True)
    assert "password_hash" not in page and "pbkdf2" not in page and "scrypt" not in page
    token = csrf_token_from(admin_client.get("/admin/user/new/").get_data(as_text=True))
    response = admin_client.post(
        "/admin/user/new/",
        data={
            "username": "carol",
            "password": "carol-password",
            "is_active": "y",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    login(app.test_client(), "carol", "carol-password")


def test_user_admin_requires_a_password_for_new_users(app, admin_client):
    token = csrf_token_from(admin_client.get("/admin/user/new/").get_data(as_text=True))
    response = admin_client.post("/admin/user/new/", data={"username": "dave", "csrf_token": token})
    assert response.status_code == 200
    assert "新建用户必须设置密码" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/banner/edit/?id=abc",
        "/admin/banner/edit/?id=999999",
        "/admin/user/details/?id=%00",
        "/admin/banner/edit/?id=99999999999999999999",
        "/admin/course/details/?id=%C2%B2",
    ],
)
def test_admin_bad_ids_answer_without_a_server_error(admin_client, url):
    response = admin_client.get(url)
    # Flask-Admin's answer to a record it cannot find: back to the list, with a message.
    list_url = url.split("/edit/")[0].split("/details/")[0] + "/"
    assert response.status_code == 302 and response.headers["Location"] == list_url


@pytest.mark.parametrize("rowid", ["abc", "1\x00", "99999999999999999999"])
def test_admin_actions_with_bad_ids_answer_without_a_server_error(admin_client, rowid):
    token = csrf_token_from(admin_client.get("/admin/banner/").get_data(as_text=True))
    response = admin_client.post(
        "/admin/banner/action/", data={"action": "delete", "rowid": rowid, "csrf_token": token}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("url", ["/nope", "/uploads/../config.py", "/api/v1/nope/"])
def test_unknown_urls_are_404_with_a_message(client, url):
    response = client.get(url)
    assert response.status_code == 404


def test_api_404_uses_the_json_envelope(client):
    body = client.get("/api/v1/nope/").get_json()
    assert body["code"] != 100 and body["msg"]
