"""Helpers for the flash-sale tests: sales, many buyers with real sessions, a live HTTP server."""

import threading
import time
from datetime import timedelta

from flask import g, session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, insert, select, text
from werkzeug.serving import make_server

from luffy.extensions import db
from luffy.models import Course, Order, Sale, User
from luffy.models.base import utcnow
from luffy.seckill import keys, sales

BUY = "/api/v1/user/seckill/seckill/"
RESULT = "/api/v1/user/seckill/get_result/"


def add_sale(app, stock, starts_in=-60, ends_in=3600, course_name="秒杀课程", price="9.90"):
    """A course and a sale on it, loaded into Redis; returns (course_id, sale_id)."""
    with app.app_context():
        course = db.session.scalar(select(Course).where(Course.name == course_name))
        if course is None:
            course = Course(name=course_name, price="999.00")
            db.session.add(course)
            db.session.flush()
        now = utcnow()
        sale = Sale(
            course_id=course.id,
            price=price,
            total_stock=stock,
            remaining_stock=stock,
            start_at=now + timedelta(seconds=starts_in),
            end_at=now + timedelta(seconds=ends_in),
        )
        db.session.add(sale)
        db.session.commit()
        assert sales.warm_sale(sale)
        return course.id, sale.id


def add_buyers(app, count, prefix="buyer", **fields):
    """``count`` users (no password: they get a session cookie directly); returns their ids."""
    with app.app_context():
        rows = [
            {
                "username": f"{prefix}{i}",
                "password_hash": "",
                "is_admin": False,
                "is_active": True,
                "created_at": utcnow(),
                "updated_at": utcnow(),
                **fields,
            }
            for i in range(count)
        ]
        db.session.execute(insert(User), rows)
        db.session.commit()
        return list(
            db.session.scalars(
                select(User.id).where(User.username.like(f"{prefix}%")).order_by(User.id)
            )
        )


def session_for(app, user_id):
    """(session cookie value, X-CSRFToken) as a real login would leave them."""
    with app.test_request_context():
        g.pop("csrf_token", None)  # generate_csrf caches one per app context
        # Flask-Login keeps User.get_id(), "<id>:<session_token>" (luffy/auth/login.py).
        session["_user_id"] = db.session.get(User, user_id).get_id()
        session["_fresh"] = True
        token = generate_csrf()
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return cookie, token


def logged_in_client(app, user_id):
    client = app.test_client()
    cookie, token = session_for(app, user_id)
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    client.csrf = token
    return client


def buy(client, course_id):
    return client.post(BUY, json={"course_id": course_id}, headers={"X-CSRFToken": client.csrf})


def result(client, ticket):
    return client.get(RESULT, query_string={"task_id": ticket})


class LiveServer:
    """The app served over real sockets by werkzeug (a thread per request), on a free port."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(timeout=10)


def wait_until(predicate, timeout=60, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def orders_of(app, sale_id):
    with app.app_context():
        return dict(
            db.session.execute(
                select(Order.user_id, Order.ticket).where(Order.sale_id == sale_id)
            ).all()
        )


def remaining(app, sale_id):
    with app.app_context():
        return db.session.scalar(select(Sale.remaining_stock).where(Sale.id == sale_id))


def order_count(app, sale_id):
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Order).where(Order.sale_id == sale_id)
        )


def redis_state(redis_client, sale_id):
    stock, total, queued = redis_client.hmget(keys.sale_key(sale_id), "stock", "total", "queued")
    buyers = {int(k): v.decode() for k, v in redis_client.hgetall(keys.buyers_key(sale_id)).items()}
    return {
        "stock": None if stock is None else int(stock),
        "total": None if total is None else int(total),
        "queued": None if queued is None else int(queued),
        "buyers": buyers,
        "pending": redis_client.llen(keys.PENDING_KEY),
        "processing": sum(redis_client.llen(key) for key in keys.PROCESSING_KEYS),
    }


def assert_consistent(app, redis_client, sale_id, total):
    """The end state every flash-sale run must reach: exact, on both sides."""
    orders = orders_of(app, sale_id)
    state = redis_state(redis_client, sale_id)
    assert len(orders) <= total
    assert remaining(app, sale_id) == total - len(orders) >= 0
    assert state["stock"] == total - len(orders)
    assert state["buyers"] == {user_id: ticket for user_id, ticket in orders.items()}
    assert state["queued"] == 0 and state["pending"] == 0 and state["processing"] == 0, state
    return orders


class DatabaseHold:
    """Holds a write lock on a sale's row (SQLite: the database) so order tasks block mid-batch."""

    def __init__(self, app, sale_id):
        self.app, self.sale_id = app, sale_id
        self.connection = None

    def __enter__(self):
        with self.app.app_context():
            self.connection = db.engine.connect()
        self.connection.execute(
            text("UPDATE sales SET remaining_stock = remaining_stock WHERE id = :id"),
            {"id": self.sale_id},
        )
        return self

    def release(self):
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()
            self.connection = None

    def __exit__(self, *exc):
        self.release()
