"""The flash sale against real Redis, broker, worker and database: no overselling, nothing lost."""

import json
import signal
import socket
import threading
import time
from datetime import timedelta

import pytest
import redis
import requests
from conftest import start_worker, stop_worker
from itsdangerous import URLSafeTimedSerializer
from seckill_helpers import (
    BUY,
    RESULT,
    DatabaseHold,
    LiveServer,
    add_buyers,
    add_sale,
    assert_consistent,
    buy,
    logged_in_client,
    order_count,
    orders_of,
    redis_state,
    remaining,
    result,
    session_for,
    wait_until,
)
from sqlalchemy import func, select, update

from luffy.extensions import db
from luffy.models import Course, Order, Sale, User
from luffy.models.base import utcnow
from luffy.seckill import admission, keys, sales


def final_answer(client, ticket, timeout=60):
    """Poll the result route like the page does until it says 1 or 0; returns the states seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = result(client, ticket)
        if response.status_code == 429:
            time.sleep(0.2)
            continue
        assert response.status_code == 200, response.get_json()
        state = response.get_json()["success"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("1", "0"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no final answer for {ticket}: {seen}")


@pytest.fixture(autouse=True)
def order_tasks_finished(app, redis_client):
    """After each test, wait for any order task to finish (it lingers for more buyers while it
    holds a drain slot), so the next test starts with no order task running."""
    yield
    broker = app.extensions["celery"].conf.broker_url
    queue = redis.Redis.from_url(broker) if broker.startswith("redis://") else None

    def seckill_messages():
        if queue is None:
            return 0
        # fetched in the last 10 s and not yet acked (a SIGKILLed worker's message stays in
        # "unacked" until the visibility timeout: that one is not running anywhere)
        recent = queue.zrangebyscore("unacked_index", time.time() - 10, "+inf")
        unacked = [json.loads(m)[0] for m in queue.hmget("unacked", recent) if m] if recent else []
        return queue.llen("seckill") + sum(
            1
            for message in unacked
            if message.get("headers", {}).get("task", "").startswith("tasks.seckill.")
        )

    def finished():
        return not redis_client.exists(*keys.LOCK_KEYS) and not seckill_messages()

    wait_until(finished, timeout=30, interval=0.1, message="the order task to finish")


class SeckillConsumerPaused:
    """The session worker stops taking flash-sale messages for a while (a real control command)."""

    def __init__(self, app, worker):
        self.control = app.extensions["celery"].control
        self.hostname = worker.hostname

    def __enter__(self):
        self.control.cancel_consumer("seckill", destination=[self.hostname], reply=True, timeout=5)
        return self

    def resume(self):
        self.control.add_consumer("seckill", destination=[self.hostname], reply=True, timeout=5)

    def __exit__(self, *exc):
        self.resume()


# -- concurrency: S items, N buyers, several requests each, released together ---------------
def fire_together(url, course_id, credentials, requests_each):
    """Every buyer fires ``requests_each`` buy requests at once; returns (user, status, body)."""
    answers, lock = [], threading.Lock()
    barrier = threading.Barrier(len(credentials) * requests_each)

    def fire(user_id, cookie, token):
        http = requests.Session()
        http.cookies.set("session", cookie)
        barrier.wait()
        response = http.post(
            url + BUY, json={"course_id": course_id}, headers={"X-CSRFToken": token}, timeout=60
        )
        with lock:
            answers.append((user_id, response.status_code, response.json()))

    threads = [
        threading.Thread(target=fire, args=(user_id, *credentials[user_id]))
        for user_id in credentials
        for _ in range(requests_each)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


@pytest.mark.parametrize("buyers, stock", [(12, 20), (20, 20), (40, 15)], ids=["N<S", "N=S", "N>S"])
def test_concurrent_buyers_get_exactly_the_stock(app, worker, redis_client, buyers, stock):
    course_id, sale_id = add_sale(app, stock)
    user_ids = add_buyers(app, buyers)
    credentials = {user_id: session_for(app, user_id) for user_id in user_ids}
    with LiveServer(app) as server:
        answers = fire_together(server.url, course_id, credentials, requests_each=3)

        assert len(answers) == buyers * 3
        assert all(status < 500 for _, status, _ in answers), answers
        admitted = {}
        for user_id, status, body in answers:
            if status == 200:
                assert user_id not in admitted, "one buyer admitted twice"
                admitted[user_id] = body["task_id"]
            else:
                assert status == 409, body
                assert body["msg"] in ("已售罄", "您已经抢购过该课程"), body
        assert len(admitted) == min(buyers, stock)

        told_bought = set()
        for user_id, ticket in admitted.items():
            http = requests.Session()
            http.cookies.set("session", credentials[user_id][0])
            deadline = time.monotonic() + 60
            while True:
                body = http.get(server.url + RESULT, params={"task_id": ticket}, timeout=30).json()
                if body.get("success") in ("1", "0") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if body.get("success") == "1":
                told_bought.add(user_id)

    orders = assert_consistent(app, redis_client, sale_id, stock)
    assert len(orders) == min(buyers, stock)
    assert told_bought == set(orders) == set(admitted)
    assert set(orders.values()) == set(admitted.values())


# -- the result route -------------------------------------------------------------------------
def test_result_states_2_3_1_and_0_only_for_the_owner(app, worker, redis_client):
    course_id, sale_id = add_sale(app, 5)
    buyer_id, other_id = add_buyers(app, 2)
    gone_id = add_buyers(app, 1, prefix="gone")[0]
    buyer, other = logged_in_client(app, buyer_id), logged_in_client(app, other_id)
    gone = logged_in_client(app, gone_id)

    with SeckillConsumerPaused(app, worker) as paused:
        response = buy(buyer, course_id)
        assert response.status_code == 200, response.get_json()
        ticket = response.get_json()["task_id"]
        gone_ticket = buy(gone, course_id).get_json()["task_id"]
        with app.app_context():  # deactivated after Redis admitted it: the order task refuses
            db.session.execute(update(User).where(User.id == gone_id).values(is_active=False))
            db.session.commit()
        time.sleep(0.5)
        assert result(buyer, ticket).get_json()["success"] == "2"  # queued, nobody runs it yet

        assert result(other, ticket).status_code == 404  # someone else's ticket
        assert result(buyer, "0" * 32).status_code == 404  # never issued
        assert result(buyer, "not-a-ticket").status_code == 404
        assert result(buyer, "").status_code == 400
        assert app.test_client().get(RESULT, query_string={"task_id": ticket}).status_code == 401

        with DatabaseHold(app, sale_id):
            paused.resume()  # the order task starts and blocks on the held row
            wait_until(
                lambda: result(buyer, ticket).get_json()["success"] == "3",
                timeout=30,
                message="state 3 (running)",
            )
        assert final_answer(buyer, ticket)[-1] == "1"

        wait_until(
            lambda: redis_client.hget(keys.ticket_key(gone_ticket), "state") == b"0",
            timeout=30,
            message="the deactivated buyer's order refused",
        )
        assert result(gone, gone_ticket).status_code == 401  # Flask-Login: no longer logged in

    assert set(orders_of(app, sale_id)) == {buyer_id}
    assert_consistent(app, redis_client, sale_id, 5)  # the refused buyer's unit came back


# -- a worker killed in the middle of the run --------------------------------------------------
def test_worker_sigkilled_mid_batch_then_restarted_ends_exact(app, worker, redis_client):
    from tasks.seckill import reconcile

    course_id, sale_id = add_sale(app, 10)
    user_ids = add_buyers(app, 15)
    clients = {user_id: logged_in_client(app, user_id) for user_id in user_ids}
    own = None
    with SeckillConsumerPaused(app, worker):
        own = start_worker(app, "-c", "1", "-Q", "seckill")
        try:
            with DatabaseHold(app, sale_id):
                answers = {user_id: buy(client, course_id) for user_id, client in clients.items()}
                admitted = {
                    u: r.get_json()["task_id"] for u, r in answers.items() if r.status_code == 200
                }
                assert len(admitted) == 10
                assert all(r.status_code == 409 for r in answers.values() if r.status_code != 200)
                wait_until(
                    lambda: redis_state(redis_client, sale_id)["processing"] > 0,
                    timeout=30,
                    message="the order task taking a batch",
                )
                stop_worker(own, sig=signal.SIGKILL)  # the whole worker, main process included
            assert order_count(app, sale_id) == 0
            assert redis_state(redis_client, sale_id)["processing"] > 0

            own = start_worker(app, "-c", "1", "-Q", "seckill")

            def settled():
                reconcile.delay()  # what beat does every SECKILL_RECONCILE_SECONDS
                return (
                    order_count(app, sale_id) == 10
                    and redis_state(redis_client, sale_id)["queued"] == 0
                )

            wait_until(settled, timeout=90, interval=3, message="orders after the restart")
        finally:
            stop_worker(own)

    orders = assert_consistent(app, redis_client, sale_id, 10)
    assert set(orders) == set(admitted)
    for user_id, ticket in admitted.items():
        assert final_answer(clients[user_id], ticket)[-1] == "1"


# -- several drainers ---------------------------------------------------------------------------
def test_a_long_backlog_is_drained_by_two_worker_processes_at_once(app, worker, redis_client):
    course_id, sale_id = add_sale(app, 40)
    user_ids = add_buyers(app, 40)
    small_batches = {"SECKILL_BATCH_SIZE": "5", "SECKILL_DRAIN_SLOTS": "2"}
    with SeckillConsumerPaused(app, worker):
        own = [start_worker(app, "-c", "1", "-Q", "seckill", env=small_batches) for _ in range(2)]
        try:
            with DatabaseHold(app, sale_id):
                with app.app_context():
                    tickets = {
                        user_id: admission.admit(user_id, course_id, "10.0.0.1")
                        for user_id in user_ids
                    }

                # The first order task fans out a second one: both slots hold a batch at once.
                def both_slots_busy():
                    return all(
                        redis_client.exists(keys.lock_key(slot))
                        and redis_client.llen(keys.processing_key(slot))
                        for slot in (0, 1)
                    )

                wait_until(
                    both_slots_busy, timeout=30, interval=0.05, message="two drainers at once"
                )
            wait_until(lambda: order_count(app, sale_id) == 40, timeout=90, message="every order")
        finally:
            for process in own:
                stop_worker(process)
    assert set(assert_consistent(app, redis_client, sale_id, 40)) == set(tickets)


def test_a_drainer_adopts_the_batch_a_dead_drainer_left_in_another_slot(app, redis_client):
    from luffy.seckill import drain

    course_id, sale_id = add_sale(app, 6)
    user_ids = add_buyers(app, 6)
    redis_client.set(keys.KICK_KEY, "test", ex=60)  # no order task is sent: this test drains
    with app.app_context():
        tickets = {user_id: admission.admit(user_id, course_id, "10.0.0.2") for user_id in user_ids}
    # The drainer of slot 3 died mid-batch: four tickets on its list, its lock about to expire.
    for _ in range(4):
        redis_client.lmove(keys.PENDING_KEY, keys.processing_key(3), "RIGHT", "LEFT")
    redis_client.set(keys.lock_key(3), "dead", px=500)

    with app.app_context():
        outcomes = drain.drain_pending()  # takes slot 0, then adopts slot 3 before it stops
    assert sorted(o.ticket for o in outcomes if o.code == "1") == sorted(tickets.values())
    assert redis_client.llen(keys.processing_key(3)) == 0
    assert not redis_client.exists(keys.KICK_KEY, *keys.LOCK_KEYS)
    assert set(assert_consistent(app, redis_client, sale_id, 6)) == set(tickets)


def test_a_batch_committed_by_a_drainer_that_died_is_not_written_twice(app, redis_client):
    from luffy.seckill import drain, orders

    course_id, sale_id = add_sale(app, 5)
    user_ids = add_buyers(app, 4)
    redis_client.set(keys.KICK_KEY, "test", ex=60)  # no order task is sent: this test drains
    with app.app_context():
        tickets = {user_id: admission.admit(user_id, course_id, "10.0.0.4") for user_id in user_ids}
        # A drainer takes the batch and commits its orders, then dies before finishing the
        # tickets in Redis: the batch stays on its slot's list, its lock runs out.
        dead = drain.Drainer()
        assert dead.acquire()
        batch = dead.take(10)
        assert all(o.written for _, o in orders.write_batch(batch))
        redis_client.delete(keys.lock_key(dead.slot))
        assert redis_client.llen(keys.processing_key(dead.slot)) == 4

        outcomes = drain.drain_pending()  # picks the left-over batch up first
    assert sorted(o.ticket for o in outcomes) == sorted(tickets.values())
    assert {(o.code, o.written) for o in outcomes} == {("1", False)}  # bought, not written again
    assert order_count(app, sale_id) == 4 and remaining(app, sale_id) == 1
    assert {redis_client.hget(keys.ticket_key(t), "state") for t in tickets.values()} == {b"1"}
    assert set(assert_consistent(app, redis_client, sale_id, 5)) == set(tickets)


def test_the_database_sells_no_more_than_it_has_when_redis_admits_too_many(app, redis_client):
    from luffy.seckill import drain

    course_id, sale_id = add_sale(app, 5)
    user_ids = add_buyers(app, 4)
    with app.app_context():  # a hand edit: the database has 2 units, Redis still believes 5
        db.session.execute(update(Sale).where(Sale.id == sale_id).values(remaining_stock=2))
        db.session.commit()
    redis_client.set(keys.KICK_KEY, "test", ex=60)  # no order task is sent: this test drains
    with app.app_context():
        tickets = [admission.admit(user_id, course_id, "10.0.0.3") for user_id in user_ids]
        outcomes = {o.ticket: o for o in drain.drain_pending()}
    assert sorted(o.code for o in outcomes.values()) == ["1", "1", "x", "x"]
    assert {o.msg for o in outcomes.values() if o.code == "x"} == {"已售罄"}
    assert set(outcomes) == set(tickets)
    assert order_count(app, sale_id) == 2 and remaining(app, sale_id) == 0


# -- Redis loses everything mid-sale ------------------------------------------------------------
def test_redis_flushed_mid_sale_is_rebuilt_from_the_database(app, worker, redis_client):
    course_id, sale_id = add_sale(app, 10)
    first = add_buyers(app, 4, prefix="early")
    for user_id in first:
        client = logged_in_client(app, user_id)
        ticket = buy(client, course_id).get_json()["task_id"]
        assert final_answer(client, ticket)[-1] == "1"

    redis_client.flushdb()  # db 0: stock, buyers, tickets; the broker (db 1) survives

    late = add_buyers(app, 12, prefix="late")
    client = logged_in_client(app, late[0])
    first_answer = buy(client, course_id)
    assert first_answer.status_code == 503  # no guessing while the state is missing
    # The refusal asked for a reconciliation, which rebuilds from the database.
    wait_until(lambda: redis_client.exists(keys.READY_KEY), timeout=30, message="the rebuild")
    assert redis_state(redis_client, sale_id)["stock"] == 6

    for user_id in first:  # the database remembers who bought
        assert buy(logged_in_client(app, user_id), course_id).status_code == 409
    answers = {}
    for user_id in late:
        client = logged_in_client(app, user_id)
        response = buy(client, course_id)
        assert response.status_code in (200, 409), response.get_json()
        if response.status_code == 200:
            answers[user_id] = (client, response.get_json()["task_id"])
    assert len(answers) == 6
    for client, ticket in answers.values():
        assert final_answer(client, ticket)[-1] == "1"
    orders = assert_consistent(app, redis_client, sale_id, 10)
    assert len(orders) == 10 and remaining(app, sale_id) == 0


def test_reconciliation_finishes_a_lost_order_task_and_refunds_a_lost_ticket(
    app, worker, redis_client
):
    from tasks.seckill import reconcile

    course_id, sale_id = add_sale(app, 5)
    lost_task, lost_ticket = add_buyers(app, 2)
    with SeckillConsumerPaused(app, worker):
        ticket_a = buy(logged_in_client(app, lost_task), course_id).get_json()["task_id"]
        ticket_b = buy(logged_in_client(app, lost_ticket), course_id).get_json()["task_id"]
        # Both fall off the queue (as if the order task vanished); one ticket is lost outright.
        redis_client.delete(keys.PENDING_KEY, keys.KICK_KEY)
        redis_client.delete(keys.ticket_key(ticket_b))
        report = reconcile.apply().get()
    repaired = " ".join(report["sales"][0]["repaired"])
    assert f"user {lost_task}: order task lost, queued again" in repaired
    assert f"user {lost_ticket}: ticket lost, unit given back" in repaired
    wait_until(lambda: order_count(app, sale_id) == 1, message="the re-queued order")
    assert final_answer(logged_in_client(app, lost_task), ticket_a)[-1] == "1"
    assert result(logged_in_client(app, lost_ticket), ticket_b).status_code == 404
    assert assert_consistent(app, redis_client, sale_id, 5) == {lost_task: ticket_a}
    # the refunded buyer may try again
    assert buy(logged_in_client(app, lost_ticket), course_id).status_code == 200


def test_buyer_gets_one_text_and_one_mail(app, worker, mailbox):
    from tasks.seckill import notify_buyer

    course_id, sale_id = add_sale(app, 2)
    user_id = add_buyers(
        app, 1, prefix="notified", mobile="13912345678", email="notified@example.com"
    )[0]
    client = logged_in_client(app, user_id)
    assert final_answer(client, buy(client, course_id).get_json()["task_id"])[-1] == "1"
    message = mailbox.wait_for(1)[0]
    assert message["Subject"] == "秒杀成功" and message.envelope_to == ["notified@example.com"]
    assert "恭喜您秒杀成功" in message.get_body(("plain",)).get_content()
    wait_until(
        lambda: (
            "SMS to 13912345678: 【路飞学城】恭喜您秒杀成功"
            in worker.log_path.read_text(errors="replace")
        ),
        timeout=30,
        message="the text message (console SMS backend, in the worker log)",
    )
    with app.app_context():
        order_id = db.session.scalar(select(Order.id).where(Order.sale_id == sale_id))
    assert notify_buyer.delay(order_id).get(timeout=30)["sent"] == []  # a redelivery sends nothing
    time.sleep(0.5)
    assert len(mailbox.messages) == 1


def test_reconciliation_repairs_stock_and_alerts_on_a_database_mismatch(app, redis_client, mailbox):
    from luffy.seckill.reconcile import reconcile_sales

    course_id, sale_id = add_sale(app, 5)
    redis_client.hset(keys.sale_key(sale_id), "stock", 9)  # Redis drifted
    with app.app_context():
        db.session.execute(update(Sale).where(Sale.id == sale_id).values(remaining_stock=3))
        db.session.commit()  # a hand edit: 2 units gone without orders
        report = reconcile_sales()
    assert "Redis stock 9 set to 5 (total - buyers)" in report["sales"][0]["repaired"]
    assert report["problems"] == [
        f"sale {sale_id}: database has 0 orders but total - remaining = 2"
    ]
    alert = mailbox.wait_for(1)[0]
    assert alert["Subject"] == "[路飞学城告警] 秒杀对账发现无法修复的差异"
    assert report["problems"][0] in alert.get_content()


def test_reconcile_is_in_the_beat_schedule(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    entry = next(e for e in schedule.values() if e["task"] == "tasks.seckill.reconcile")
    assert float(entry["schedule"]) == app.config["SECKILL_RECONCILE_SECONDS"]


# -- bad input and refusals ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, status",
    [
        (None, 400),
        ({}, 400),
        ([], 400),
        ({"course_id": "abc"}, 400),
        ({"course_id": None}, 400),
        ({"course_id": True}, 400),
        ({"course_id": -1}, 400),
        ({"course_id": 0}, 400),
        ({"course_id": 1.5}, 400),
        ({"course_id": "1" * 40}, 400),
        ({"course_id": 2**40}, 400),
        ({"course_id": 999999}, 404),
    ],
)
def test_bad_input_is_refused(app, body, status):
    add_sale(app, 3)
    client = logged_in_client(app, add_buyers(app, 1)[0])
    response = client.post(BUY, json=body, headers={"X-CSRFToken": client.csrf})
    assert response.status_code == status, response.get_json()
    assert response.get_json()["code"] != 100


def test_not_json_and_no_csrf_token_are_refused(app):
    course_id, _ = add_sale(app, 3)
    client = logged_in_client(app, add_buyers(app, 1)[0])
    assert (
        client.post(BUY, data="course_id=1", headers={"X-CSRFToken": client.csrf}).status_code
        == 400
    )
    response = client.post(BUY, json={"course_id": course_id})
    assert response.status_code == 400 and "CSRF" in response.get_json()["msg"]


def test_a_token_or_cookie_that_does_not_check_out_is_refused(app, redis_client):
    course_id, sale_id = add_sale(app, 3)
    first, second = add_buyers(app, 2)
    client = logged_in_client(app, first)
    other_token = session_for(app, second)[1]  # a valid token, but of another session
    response = client.post(BUY, json={"course_id": course_id}, headers={"X-CSRFToken": other_token})
    assert response.status_code == 400 and "CSRF" in response.get_json()["msg"]

    tampered = app.test_client()
    cookie, token = session_for(app, first)
    tampered.set_cookie(
        app.config["SESSION_COOKIE_NAME"], cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")
    )
    response = tampered.post(BUY, json={"course_id": course_id}, headers={"X-CSRFToken": token})
    # A session that does not verify is no session: not logged in, before any CSRF check.
    assert response.status_code == 401, response.get_json()
    assert redis_state(redis_client, sale_id)["buyers"] == {}


def test_a_buy_is_authenticated_by_flask_logins_user_loader(app, redis_client):
    # A session cookie that still names the user is not enough: Flask-Login's user loader
    # decides (a deactivated account, or a session the user loader no longer accepts).
    course_id, sale_id = add_sale(app, 3)
    [user_id] = add_buyers(app, 1, prefix="loader")
    client = logged_in_client(app, user_id)
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(is_active=False))
        db.session.commit()
    response = buy(client, course_id)
    assert response.status_code == 401 and response.get_json()["msg"] == "请先登录"
    assert redis_state(redis_client, sale_id)["buyers"] == {}


def test_a_secret_key_rotation_keeps_sessions_on_their_fallback_key(
    app, worker, redis_client, monkeypatch
):
    # Flask's rule: a session signed with the old key counts while that key is in
    # SECRET_KEY_FALLBACKS; Flask-WTF's rule: CSRF tokens are signed with the current key.
    course_id, sale_id = add_sale(app, 5)
    old_user, new_user = add_buyers(app, 2, prefix="rotation")
    old_cookie, old_token = session_for(app, old_user)
    old_key = app.config["SECRET_KEY"]

    def post(cookie, token):
        client = app.test_client()
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
        return client.post(BUY, json={"course_id": course_id}, headers={"X-CSRFToken": token})

    monkeypatch.setitem(app.config, "SECRET_KEY", "a-rotated-secret-key-for-the-rotation-test")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old_key])
    raw = app.session_interface.get_signing_serializer(app).loads(old_cookie)["csrf_token"]
    fresh_token = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token").dumps(raw)
    assert post(old_cookie, old_token).status_code == 400  # a token signed with the old key
    assert post(old_cookie, fresh_token).status_code == 200  # the session's fallback key
    assert buy(logged_in_client(app, new_user), course_id).status_code == 200  # the new key
    assert set(redis_state(redis_client, sale_id)["buyers"]) == {old_user, new_user}

    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    redis_client.hdel(keys.buyers_key(sale_id), old_user)  # so only the session can refuse
    assert post(old_cookie, fresh_token).status_code == 401  # the old key is gone: not logged in
    assert set(redis_state(redis_client, sale_id)["buyers"]) == {new_user}


def test_not_logged_in_is_401(app):
    course_id, _ = add_sale(app, 3)
    response = app.test_client().post(BUY, json={"course_id": course_id})
    assert response.status_code == 401 and response.get_json()["code"] == 102


@pytest.mark.parametrize(
    "starts_in, ends_in, msg",
    [(3600, 7200, "秒杀尚未开始"), (-7200, -60, "秒杀已结束")],
    ids=["not started", "ended"],
)
def test_sale_outside_its_window_is_refused(app, redis_client, starts_in, ends_in, msg):
    course_id, sale_id = add_sale(app, 3, starts_in=starts_in, ends_in=ends_in)
    response = buy(logged_in_client(app, add_buyers(app, 1)[0]), course_id)
    assert response.status_code == 409 and response.get_json()["msg"] == msg
    assert redis_state(redis_client, sale_id)["stock"] == 3


def test_course_without_a_sale_is_404(app, redis_client):
    with app.app_context():
        course = Course(name="无秒杀", price="1.00")
        db.session.add(course)
        db.session.commit()
        course_id = course.id
    _, other_sale = add_sale(app, 1, course_name="另一门")
    assert redis_state(redis_client, other_sale)["stock"] == 1  # the gate is loaded, not empty
    response = buy(logged_in_client(app, add_buyers(app, 1)[0]), course_id)
    assert response.status_code == 404 and response.get_json()["msg"] == "该课程没有秒杀活动"


def test_closed_and_long_ended_sales_answer_404_not_503(app, redis_client):
    from luffy.seckill.reconcile import reconcile_sales

    course_id, sale_id = add_sale(app, 3)
    client = logged_in_client(app, add_buyers(app, 1)[0])
    with app.app_context():
        sale = db.session.get(Sale, sale_id)
        sale.state = Sale.CLOSED
        db.session.commit()
        sales.warm_sale(sale)
    assert buy(client, course_id).status_code == 404

    old_course, old_sale = add_sale(app, 3, starts_in=-7200, ends_in=-3600, course_name="早就结束")
    with app.app_context():
        reconcile_sales()  # forgets sales ended more than 30 minutes ago
    assert not redis_client.exists(keys.sale_key(old_sale))
    response = buy(client, old_course)
    assert response.status_code == 404 and response.get_json()["msg"] == "该课程没有秒杀活动"


def within_one_second(burst, attempts=5):
    """``burst()``'s result, run so that it starts and ends in the same wall-clock second.

    The rate limits count per whole second: a burst that straddles two seconds would see two
    budgets. Each try starts just after a second begins; a try that still straddles (a busy
    machine) is run again in the next second, whose counters are fresh.
    """
    for _ in range(attempts):
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        second = int(time.time())
        outcome = burst()
        if int(time.time()) == second:
            return outcome
    pytest.fail(f"no burst fitted in one second in {attempts} tries")


def test_per_user_and_per_address_rate_limits(app, monkeypatch):
    course_id, _ = add_sale(app, 3, starts_in=3600, ends_in=7200)  # refusals, nothing bought
    client = logged_in_client(app, add_buyers(app, 1)[0])
    per_user = app.config["SECKILL_USER_RATE"]
    statuses = within_one_second(
        lambda: [buy(client, course_id).status_code for _ in range(per_user + 3)]
    )
    assert statuses == [409] * per_user + [429] * 3  # not open yet, then too many

    monkeypatch.setitem(app.config, "SECKILL_ADDRESS_RATE", 4)
    others = [logged_in_client(app, u) for u in add_buyers(app, 8, prefix="nat")]
    statuses = within_one_second(lambda: [buy(c, course_id).status_code for c in others])
    assert statuses == [409] * 4 + [429] * 4  # eight users behind one address: four pass


def test_sold_out_refusals_come_from_memory_without_redis(app, worker, redis_client):
    course_id, sale_id = add_sale(app, 1)
    user_ids = add_buyers(app, 3)
    first, second, third = (logged_in_client(app, u) for u in user_ids)
    assert buy(first, course_id).status_code == 200
    assert buy(second, course_id).get_json()["msg"] == "已售罄"
    assert list(redis_client.scan_iter(keys.rate_key("buy", user_ids[1], "*")))
    response = buy(third, course_id)
    assert response.status_code == 409 and response.get_json()["msg"] == "已售罄"
    # The admission script counts every request it sees first thing: this one never got there.
    assert not list(redis_client.scan_iter(keys.rate_key("buy", user_ids[2], "*")))


def test_the_fast_path_answers_sold_out_refusals_before_flask(
    app, worker, redis_client, monkeypatch
):
    from werkzeug.test import Client

    from luffy.seckill.fast_path import SoldOutGate

    # The switch: the gate is among the app's WSGI layers exactly when SECKILL_FAST_PATH is on.
    layers, layer = [], app.wsgi_app
    while layer is not None and len(layers) < 10:
        layers.append(layer)
        layer = getattr(layer, "wsgi_app", None) or getattr(layer, "app", None)
    gates = [layer for layer in layers if isinstance(layer, SoldOutGate)]
    assert len(gates) == (1 if app.config["SECKILL_FAST_PATH"] else 0)
    course_id, _ = add_sale(app, 1)
    first, second = (logged_in_client(app, u) for u in add_buyers(app, 2))
    assert buy(first, course_id).status_code == 200
    assert buy(second, course_id).status_code == 409  # this process now knows it is sold out

    def flask_view_not_reached():
        raise AssertionError("the refusal went past the fast path to the Flask view")

    monkeypatch.setitem(app.view_functions, "seckill.buy", flask_view_not_reached)
    with app.app_context():
        memory = admission.sold_out_memory()
    gate = SoldOutGate(app.wsgi_app, memory, BUY, admission.REFUSALS["sold_out"][1])
    refused = Client(gate).post(BUY, json={"course_id": course_id})
    assert refused.status_code == 409 and refused.get_json()["msg"] == "已售罄"


# -- dependencies down --------------------------------------------------------------------------
@pytest.fixture
def closed_port():
    from local_redis import free_port

    return free_port()


@pytest.fixture
def blackhole_port():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts into the backlog, never answers
    yield silent.getsockname()[1]
    silent.close()


@pytest.fixture
def app_with(app, monkeypatch):
    """Build a second app with some settings changed; the session's Celery app is restored after."""
    from config import TestingConfig
    from luffy import create_app

    def build(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return create_app(TestingConfig)

    yield build
    app.extensions["celery"].set_current()
    app.extensions["celery"].set_default()


@pytest.mark.parametrize("broker", ["closed", "blackhole"])
def test_broker_down_answers_503_in_time_and_admits_nobody(
    app, app_with, redis_client, broker, closed_port, blackhole_port
):
    course_id, sale_id = add_sale(app, 3)
    port = closed_port if broker == "closed" else blackhole_port
    broken = app_with(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/1")
    user_id = add_buyers(app, 1)[0]
    client = logged_in_client(broken, user_id)
    started = time.monotonic()
    response = buy(client, course_id)
    assert time.monotonic() - started < 2.0
    assert response.status_code == 503 and response.get_json()["code"] == 153
    state = redis_state(redis_client, sale_id)
    assert state["stock"] == 3 and state["buyers"] == {} and state["pending"] == 0
    assert not redis_client.exists(keys.KICK_KEY)  # the next buyer tries the broker again


@pytest.mark.parametrize("where", ["closed", "blackhole"])
def test_redis_down_answers_503_in_time(app, app_with, where, closed_port, blackhole_port):
    course_id, sale_id = add_sale(app, 3)
    port = closed_port if where == "closed" else blackhole_port
    broken = app_with(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    waiting, bought = add_buyers(app, 2)
    client = logged_in_client(broken, waiting)
    started = time.monotonic()
    response = buy(client, course_id)
    assert time.monotonic() - started < 2.0
    assert response.status_code == 503

    # The result route: a ticket whose order is written says bought (from the database); any
    # other may still be waiting, so it is a 503 the page keeps polling on, not a final 404.
    with app.app_context():
        sale = db.session.get(Sale, sale_id)
        db.session.add(
            Order(
                ticket="b" * 32,
                user_id=bought,
                course_id=course_id,
                sale_id=sale_id,
                price=sale.price,
            )
        )
        db.session.commit()
    started = time.monotonic()
    answer = result(logged_in_client(broken, bought), "b" * 32)
    assert answer.status_code == 200 and answer.get_json()["success"] == "1"
    answer = result(client, "a" * 32)
    assert time.monotonic() - started < 4.0
    assert answer.status_code == 503 and "稍后" in answer.get_json()["msg"]


# -- the page -----------------------------------------------------------------------------------
def test_page_shows_the_sale_with_countdown_and_no_cdn(app, redis_client):
    course_id, _ = add_sale(app, 7, starts_in=600, ends_in=3600)
    client = logged_in_client(app, add_buyers(app, 1)[0])
    page = client.get(f"/seckill/{course_id}/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "秒杀课程" in html and 'id="seckill-stock">7<' in html
    assert "距开始还有" in html and 'id="seckill-buy" disabled' in html
    assert "js/seckill.js" in html and "seckill-overlay" in html
    assert "//cdn" not in html and "https://" not in html
    assert client.get("/static/js/seckill.js").status_code == 200


def test_page_needs_login_and_a_known_course(app):
    course_id, _ = add_sale(app, 1)
    response = app.test_client().get(f"/seckill/{course_id}/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    client = logged_in_client(app, add_buyers(app, 1)[0])
    assert client.get("/seckill/999999/").status_code == 404
    assert client.get("/seckill/abc/").status_code == 404


def test_page_through_a_real_login(app, buyer_client):
    course_id, _ = add_sale(app, 2)
    html = buyer_client.get(f"/seckill/{course_id}/").get_data(as_text=True)
    token = html.split('name="csrf-token" content="')[1].split('"')[0]
    response = buyer_client.post(BUY, json={"course_id": course_id}, headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["code"] == 100
    html = buyer_client.get(f"/seckill/{course_id}/").get_data(as_text=True)
    assert response.get_json()["task_id"] in html  # the page resumes polling this ticket


# -- admin, demo data, status -------------------------------------------------------------------
def admin_form(admin_client, url):
    from conftest import csrf_token_from

    return csrf_token_from(admin_client.get(url).get_data(as_text=True))


def local(moment, app):
    """``moment`` as the admin form shows it: the site's time zone."""
    from zoneinfo import ZoneInfo

    from luffy.models.base import as_utc

    return as_utc(moment).astimezone(ZoneInfo(app.config["TIMEZONE"])).strftime("%Y-%m-%d %H:%M:%S")


def test_admin_creates_a_sale_and_loads_it_into_redis(app, admin_client, redis_client):
    with app.app_context():
        course = Course(name="后台课程", price="100.00")
        db.session.add(course)
        db.session.commit()
        course_id = course.id
    start, end = utcnow() + timedelta(hours=1), utcnow() + timedelta(hours=2)
    response = admin_client.post(
        "/admin/sale/new/",
        data={
            "course": course_id,
            "price": "1.00",
            "total_stock": "30",
            "start_at": local(start, app),
            "end_at": local(end, app),
            "state": "open",
            "csrf_token": admin_form(admin_client, "/admin/sale/new/"),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    with app.app_context():
        sale = db.session.scalar(select(Sale))
        assert sale.remaining_stock == 30
        assert (
            abs((sale.start_at.replace(tzinfo=None) - start.replace(tzinfo=None)).total_seconds())
            < 1
        )
        sale_id = sale.id
    assert redis_state(redis_client, sale_id)["stock"] == 30
    assert redis_client.get(keys.course_key(course_id)) == str(sale_id).encode()

    # before the start, stock may change: database and Redis move together
    url = f"/admin/sale/edit/?id={sale_id}"
    data = {
        "course": course_id,
        "price": "1.00",
        "total_stock": "40",
        "start_at": local(start, app),
        "end_at": local(end, app),
        "state": "open",
        "csrf_token": admin_form(admin_client, url),
    }
    assert admin_client.post(url, data=data).status_code == 302
    assert remaining(app, sale_id) == 40 and redis_state(redis_client, sale_id)["stock"] == 40
    assert admin_client.get("/admin/sale/").status_code == 200
    assert admin_client.get("/admin/order/").status_code == 200


def test_admin_refuses_to_change_the_stock_of_a_running_sale(app, admin_client, redis_client):
    course_id, sale_id = add_sale(app, 10)
    with app.app_context():
        sale = db.session.get(Sale, sale_id)
        start, end = sale.start_at, sale.end_at
    url = f"/admin/sale/edit/?id={sale_id}"
    data = {
        "course": course_id,
        "price": "9.90",
        "total_stock": "50",
        "start_at": local(start, app),
        "end_at": local(end, app),
        "state": "open",
        "csrf_token": admin_form(admin_client, url),
    }
    response = admin_client.post(url, data=data)
    assert response.status_code == 200
    assert "活动已经开始，不能修改库存" in response.get_data(as_text=True)
    assert remaining(app, sale_id) == 10 and redis_state(redis_client, sale_id)["stock"] == 10


def test_seed_demo_adds_a_working_sale_once(app, runner, redis_client):
    assert "1 sales" in runner.invoke(args=["seed-demo"]).output
    assert "nothing to do" in runner.invoke(args=["seed-demo"]).output
    with app.app_context():
        sales = db.session.scalars(select(Sale)).all()
        first_course = db.session.scalar(select(func.min(Course.id)))
    assert len(sales) == 1 and sales[0].course_id == first_course
    assert redis_state(redis_client, sales[0].id)["stock"] == 10
    assert redis_client.get(keys.course_key(first_course)) == str(sales[0].id).encode()


def test_sale_status_and_running_sales_for_monitoring(app, redis_client):
    course_id, sale_id = add_sale(app, 4)
    add_sale(app, 2, starts_in=600, ends_in=1200, course_name="以后")
    client = logged_in_client(app, add_buyers(app, 1)[0])
    assert buy(client, course_id).status_code == 200
    with app.app_context():
        status = sales.sale_status(sale_id)
        running = sales.running_sales()
    assert status["stock_redis"] == 3 and status["admitted"] == 1 and status["queued"] == 1
    assert status["remaining_db"] == 4 and status["orders"] == 0 and status["phase"] == "running"
    assert [s["sale_id"] for s in running] == [sale_id]


def test_every_flash_sale_key_hashes_to_one_cluster_slot():
    # Each script takes keys of a sale together with the shared queue: on a Redis Cluster they
    # must share one slot, or the script is refused (CROSSSLOT).
    from redis.crc import key_slot

    built = [
        keys.READY_KEY,
        keys.SALES_KEY,
        keys.PENDING_KEY,
        keys.KICK_KEY,
        keys.FANOUT_KEY,
        keys.REBUILD_KICK_KEY,
        *keys.SLOT_KEYS,
        keys.course_key(7),
        keys.sale_key(123456),
        keys.buyers_key(9),
        keys.ticket_key("0123456789abcdef0123456789abcdef"),
        keys.rate_key("addr", "10.0.0.1", 1700000000),
        keys.notified_key(5, "sms"),
    ]
    assert all(key.startswith("luffy:") for key in built)
    assert len({key_slot(key.encode()) for key in built}) == 1
