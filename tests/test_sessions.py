"""Signed-cookie sessions with the serializer built once per secret key (luffy/sessions.py)."""

from conftest import login

from luffy.sessions import SignedCookieSessions


def session_cookie(client, app):
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie else None


def test_the_app_uses_it_and_logs_in(app, users):
    assert type(app.session_interface) is SignedCookieSessions
    client = login(app.test_client(), "buyer", "buyer-password")
    assert session_cookie(client, app)
    page = client.get("/").get_data(as_text=True)
    assert "buyer" in page  # the session carried the login to the next request


def test_requests_build_no_serializer_once_one_exists(app, users, monkeypatch):
    from flask.sessions import SecureCookieSessionInterface

    client = login(app.test_client(), "buyer", "buyer-password")
    app.test_client().get("/api/v1/home/banners/")
    built = []
    build = SecureCookieSessionInterface.get_signing_serializer
    monkeypatch.setattr(
        SecureCookieSessionInterface,
        "get_signing_serializer",
        lambda self, app: built.append(1) or build(self, app),
    )
    for _ in range(3):
        assert app.test_client().get("/api/v1/home/banners/").status_code == 200  # no cookie
        assert "buyer" in client.get("/").get_data(as_text=True)  # a signed cookie read back
    assert built == []


def test_the_serializer_is_reused_and_follows_a_key_rotation(app, users, monkeypatch):
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first

    client = login(app.test_client(), "buyer", "buyer-password")
    old_key = app.config["SECRET_KEY"]
    signed_with_old_key = session_cookie(client, app)

    # Rotated with the old key kept as a fallback: the old cookie still reads.
    monkeypatch.setitem(app.config, "SECRET_KEY", "a-rotated-secret-key-for-the-test")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old_key])
    rotated = interface.get_signing_serializer(app)
    assert rotated is not first
    assert rotated.loads(signed_with_old_key)["_user_id"]

    # Old key dropped: the old cookie is refused (an empty session, not an error).
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    cookie = f"{app.config['SESSION_COOKIE_NAME']}={signed_with_old_key}"
    with app.test_request_context(headers={"Cookie": cookie}):
        from flask import request

        assert dict(interface.open_session(app, request)) == {}
