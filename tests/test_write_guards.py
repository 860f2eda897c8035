"""Guards that live in the database and in write hooks, proved by writing around the app's code.

* The orders table refuses a second order of one buyer in one sale (UNIQUE(sale_id, user_id),
  from the migrations), whatever code inserts it: Redis is only the gate in front.
* Bulk ``update(Banner)`` / ``delete(Banner)`` statements rebuild the banner cache after the
  commit, like edits of loaded rows do.
"""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_user
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from luffy.extensions import db
from luffy.models import Banner, Course, Order, Sale


def test_the_database_refuses_a_second_order_of_one_buyer_in_one_sale(app_ctx):
    course = Course(name="唯一约束课", price=99)
    db.session.add(course)
    db.session.flush()
    now = datetime.now(UTC)
    sale = Sale(
        course_id=course.id,
        price=9,
        total_stock=5,
        remaining_stock=5,
        start_at=now - timedelta(minutes=1),
        end_at=now + timedelta(hours=1),
    )
    db.session.add(sale)
    db.session.commit()
    buyer = make_user("unique-buyer", "unique-password")
    row = {"user_id": buyer, "course_id": course.id, "sale_id": sale.id, "price": 9}
    row.update(state=Order.CREATED, created_at=now)
    # Core inserts: no ORM code, no Redis, only what the database itself enforces.
    db.session.execute(insert(Order), [{**row, "ticket": "first-ticket"}])
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Order), [{**row, "ticket": "second-ticket"}])
        db.session.commit()
    db.session.rollback()
    assert db.session.query(Order).filter_by(sale_id=sale.id, user_id=buyer).count() == 1


def banner_titles(client):
    return [item["title"] for item in client.get("/api/v1/home/banners/").get_json()["results"]]


def test_bulk_update_and_delete_of_banners_rebuild_the_cache(app, client):
    with app.app_context():
        for orders, title in enumerate(("first", "second", "third")):
            db.session.add(Banner(title=title, image="/static/img/banners/go.svg", orders=orders))
        db.session.commit()
    assert banner_titles(client) == ["first", "second", "third"]  # now cached

    with app.app_context():
        db.session.execute(update(Banner).where(Banner.title == "second").values(title="bulk"))
        db.session.commit()
    assert banner_titles(client) == ["first", "bulk", "third"]

    with app.app_context():
        db.session.execute(delete(Banner).where(Banner.title == "first"))
        db.session.commit()
    assert banner_titles(client) == ["bulk", "third"]

    with app.app_context():  # a bulk statement rolled back changes nothing
        db.session.execute(delete(Banner))
        db.session.rollback()
    assert banner_titles(client) == ["bulk", "third"]
