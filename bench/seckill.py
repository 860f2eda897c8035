"""Flash-sale throughput and correctness vs a bare Flask route and a synchronous row-lock peer.

    .venv/bin/python bench/seckill.py        (or `make bench`; needs wrk: apt-get install wrk)

Starts a private Redis (scripts/local_redis.py) and a migrated SQLite database, creates users
with real signed session cookies and CSRF tokens, then, under the same gunicorn command line
(gunicorn.conf.py: 2 gthread workers x 8 threads, reuse_port):
  1. the bare Flask baseline (bench/bare_seckill_app.py: a POST answering the buy JSON) and
     Luffy (wsgi:app) with a real `celery -A tasks worker`, their runs taken in turn:
     - baseline, then admission: every request a distinct user admitted by the Lua gate (a
       sale with stock for all of them), the order task writing the orders meanwhile; the
       order task finishes that run's orders before the next baseline run;
  2. Luffy again:
     - refusals once sold out (against the baseline's median);
     - the burst: S = 100 items, N = 5,000 distinct users firing at once (asyncio client,
       64 connections), each admitted buyer polling the result route until 1 or 0;
  3. the peer (bench/seckill_sync_app.py): the order written inside the request under a row
     lock; the same admission measurement and burst.
HTTP figures: wrk -t2 -c32, median of 5 runs of 5 s after a 2 s warm-up (each run on a
fresh sale, so every request is a first-time buyer). Correctness is part of every figure:
oversold, duplicates or lost buyers print FAIL.
"""

import asyncio
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BIN, ROOT, Environment, Gunicorn, require_wrk  # noqa: E402

BUY = "/api/v1/user/seckill/seckill/"
SYNC_BUY = "/bench/seckill-sync/"
RESULT = "/api/v1/user/seckill/get_result/"
WRK_SCRIPT = str(ROOT / "bench" / "seckill_wrk.lua")
WRK_THREADS, WRK_CONNECTIONS = 2, 32
SECONDS, REPETITIONS, WARMUP = 5, 5, 2
USERS = int(os.environ.get("BENCH_SECKILL_USERS", 60000))  # distinct buyers per admission run
BURST_STOCK = int(os.environ.get("BENCH_SECKILL_STOCK", 100))
BURST_BUYERS = int(os.environ.get("BENCH_SECKILL_BUYERS", 5000))
BURST_CONNECTIONS = 64
ADMISSION_TARGET, REFUSAL_TARGET = 0.5, 0.8
# What Flask-Login's login_user() stores as ``_id`` for a client at 127.0.0.1 sending no
# User-Agent (wrk, the burst client): with it the session is not rewritten on every request,
# as for a real browser session.
LOGIN_IDENTIFIER = hashlib.sha512(b"b'127.0.0.1'|None").hexdigest()
BIG_STOCK = 1_000_000


# -- data ---------------------------------------------------------------------------------------
def prepare(tmp):
    """Users with signed sessions (a file for wrk), and the sales every phase uses."""
    from flask import g, session
    from flask_wtf.csrf import generate_csrf
    from sqlalchemy import insert, select

    from luffy import create_app
    from luffy.extensions import db
    from luffy.models import Course, Sale, User
    from luffy.models.base import utcnow

    app = create_app()
    with app.app_context():
        now = utcnow()
        db.session.execute(
            insert(User),
            [
                {
                    "username": f"bench{i}",
                    "password_hash": "",
                    "is_admin": False,
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(USERS)
            ],
        )
        db.session.commit()
        users = db.session.execute(select(User).order_by(User.id)).scalars().all()
        serializer = app.session_interface.get_signing_serializer(app)
        credentials = []
        for user in users:
            with app.test_request_context():
                g.pop("csrf_token", None)  # generate_csrf caches one per app context
                session["_user_id"] = user.get_id()  # what Flask-Login's login_user() stores
                session["_fresh"] = True
                session["_id"] = LOGIN_IDENTIFIER
                token = generate_csrf()
                credentials.append((serializer.dumps(dict(session)), token))
        users_file = tmp / "users.tsv"
        users_file.write_text("".join(f"{c}\t{t}\n" for c, t in credentials))

        plan = {
            "admission_on": 1 + REPETITIONS,
            "admission_off": 1 + REPETITIONS,
            "sync_admission": 1 + REPETITIONS,
            "refusal": 1,
            "burst": 1,
            "sync_burst": 1,
        }
        sales = {}
        for phase, count in plan.items():
            for i in range(count):
                course = Course(name=f"{phase}-{i}", price="999.00")
                db.session.add(course)
                db.session.flush()
                stock = BURST_STOCK if "burst" in phase else 1 if phase == "refusal" else BIG_STOCK
                sale = Sale(
                    course_id=course.id,
                    price="9.90",
                    total_stock=stock,
                    remaining_stock=stock,
                    start_at=now - timedelta(minutes=1),
                    end_at=now + timedelta(hours=6),
                )
                db.session.add(sale)
                db.session.flush()
                sales.setdefault(phase, []).append((course.id, sale.id))
        db.session.commit()
        from luffy.seckill.sales import load_sales

        load_sales()
    return app, users_file, credentials, sales


# -- wrk ----------------------------------------------------------------------------------------
def wrk(url, path, users_file, course_id, seconds):
    done = subprocess.run(
        [
            require_wrk(),
            f"-t{WRK_THREADS}",
            f"-c{WRK_CONNECTIONS}",
            f"-d{seconds}s",
            "-s",
            WRK_SCRIPT,
            url + path,
            "--",
            str(users_file),
            str(course_id),
            path,
            str(WRK_THREADS),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"wrk failed against {url}: {done.stdout}{done.stderr}")
    output = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rate": rate,
        "requests": total,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "5xx": int(re.search(r"status_5xx: (\d+)", output).group(1)),
        "409": int(re.search(r"status_409: (\d+)", output).group(1)),
        "socket_errors": "Socket errors" in output,
    }


def measure_admission(url, path, users_file, sales):
    """Median rate over fresh sales (a warm-up on the first); every answer must be 200."""
    runs = []
    for i, (course_id, _) in enumerate(sales):
        run = wrk(url, path, users_file, course_id, WARMUP if i == 0 else SECONDS)
        if i:
            runs.append(run)
    return statistics.median(r["rate"] for r in runs), runs


def measure_baseline_and_admission(app, bare_url, url, users_file, sales):
    """Medians of the bare baseline and of admission, their runs taken in turn (b a b a b a).

    On a shared machine the speed drifts over a minute; taking the two in turn puts the same
    drift into both figures. Each admission run is on a fresh sale; before the next baseline
    run the order task finishes that run's backlog and stops lingering, so the baseline never
    shares the machine with it (the backlog left at the end of each run is printed).
    """
    wrk(bare_url, BUY, users_file, 1, WARMUP)
    course_id, sale_id = sales[0]
    wrk(url, BUY, users_file, course_id, WARMUP)
    settle(app, [sale_id])
    baseline_runs, admission_runs, backlogs = [], [], []
    for course_id, sale_id in sales[1:]:
        baseline_runs.append(wrk(bare_url, BUY, users_file, 1, SECONDS))
        admission_runs.append(wrk(url, BUY, users_file, course_id, SECONDS))
        with app.app_context():
            from luffy.seckill import sales as seckill_sales

            backlogs.append((seckill_sales.sale_status(sale_id) or {}).get("queued"))
        settle(app, [sale_id])
    return (
        statistics.median(r["rate"] for r in baseline_runs),
        statistics.median(r["rate"] for r in admission_runs),
        admission_runs,
        backlogs,
    )


FAST_PATH_MODES = (("on", "1"), ("off", "0"))


def measure_luffy(app, bare, env, worker, users_file, sales, mode, first_buyer):
    """Admission (against the bare baseline, in turn) and refusals of Luffy started with
    ``env`` (SECKILL_FAST_PATH on or off)."""
    server = LoggedGunicorn("wsgi:app", env, name=f"luffy-fast-path-{mode}")
    try:
        wait_port(server)
        worker_cpu = cpu_seconds(worker)
        baseline, admission, admission_runs, backlogs = measure_baseline_and_admission(
            app, bare.url, server.url, users_file, sales[f"admission_{mode}"]
        )
        worker_cpu = cpu_seconds(worker) - worker_cpu
        note(f"fast path {mode}: baseline {baseline:.0f} req/s, admission {admission:.0f} req/s")
        refusal_course, _ = sales["refusal"][0]
        # sells the 1 unit (on the first pass); later a refusal that teaches this server
        asyncio.run(burst(server.url, BUY, [first_buyer], refusal_course, poll=False))
        refusal, refusal_runs = measure_refusals(server.url, users_file, refusal_course)
        note(f"fast path {mode}: refusals {refusal:.0f} req/s")
    finally:
        server.stop()
    return {
        "baseline": baseline,
        "admission": admission,
        "admission_runs": admission_runs,
        "backlogs": backlogs,
        "worker_cpu": worker_cpu,
        "refusal": refusal,
        "refusal_runs": refusal_runs,
    }


def settle(app, sale_ids):
    """Until the order task has written every order of ``sale_ids`` and stopped lingering."""
    from luffy.seckill.drain import LINGER_SECONDS

    if not wait_for_orders(app, sale_ids):
        raise RuntimeError("the order task did not finish the admission run's orders in time")
    time.sleep(LINGER_SECONDS + 0.5)


def measure_refusals(url, users_file, course_id):
    wrk(url, BUY, users_file, course_id, WARMUP)
    runs = [wrk(url, BUY, users_file, course_id, SECONDS) for _ in range(REPETITIONS)]
    return statistics.median(r["rate"] for r in runs), runs


# -- the burst: a tiny asyncio HTTP/1.1 client with keep-alive ------------------------------------
class Connection:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method, path, cookie, token=None, body=None):
        try:
            return await self._request(method, path, cookie, token, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            # gunicorn recycles a worker every max_requests: reconnect and ask again (a buy
            # asked twice answers "already bought" with the ticket, which is followed below)
            self.writer = None
            return await self._request(method, path, cookie, token, body)

    async def _request(self, method, path, cookie, token=None, body=None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Cookie: session={cookie}",
            f"Content-Length: {len(data)}",
        ]
        if token:
            head += [f"X-CSRFToken: {token}", "Content-Type: application/json"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:  # the server closed an idle keep-alive connection: reconnect
            self.writer.close()
            self.writer = None
            return await self._request(method, path, cookie, token, body)
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, {"raw": payload[:200].decode(errors="replace")}


async def burst(url, path, credentials, course_id, poll):
    """N buyers fire at once; admitted ones poll until a final answer. Returns per-buyer records."""
    host, port = url.split("//")[1].split(":")
    port = int(port)
    queue = asyncio.Queue()
    for index in range(len(credentials)):
        queue.put_nowait(index)
    records = {}

    async def follow(connection, index, cookie, ticket, sent):
        while True:
            status, body = await connection.request("GET", f"{RESULT}?task_id={ticket}", cookie)
            if status == 200 and body.get("success") in ("1", "0"):
                return body["success"], time.monotonic() - sent
            if status >= 500:
                return "5xx", time.monotonic() - sent
            await asyncio.sleep(0.05)

    async def buyer_loop():
        connection = Connection(host, port)
        while not queue.empty():
            index = queue.get_nowait()
            cookie, token = credentials[index]
            sent = time.monotonic()
            status, body = await connection.request(
                "POST", path, cookie, token, {"course_id": course_id}
            )
            answered = time.monotonic() - sent
            if status == 409 and body.get("task_id"):
                status = 200  # admitted by a first attempt whose answer the reset connection lost
            record = {"status": status, "answered": answered, "final": answered, "told": None}
            if status == 200 and poll:
                record["told"], record["final"] = await follow(
                    connection, index, cookie, body["task_id"], sent
                )
                record["ticket"] = body["task_id"]
            elif status == 200:
                record["told"] = body.get("success", "1")
            if status not in (200, 409):
                record["body"] = body
            records[index] = record

    await asyncio.gather(*(buyer_loop() for _ in range(BURST_CONNECTIONS)))
    return records


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def burst_checks(app, records, user_ids, sale_id, redis_url, uses_redis=True):
    """oversold, duplicates, lost: all must be 0."""
    import redis
    from sqlalchemy import select

    from luffy.extensions import db
    from luffy.models import Order, Sale
    from luffy.seckill import keys

    with app.app_context():
        orders = (
            db.session.execute(select(Order.user_id).where(Order.sale_id == sale_id))
            .scalars()
            .all()
        )
        sale = db.session.get(Sale, sale_id)
        remaining, total = sale.remaining_stock, sale.total_stock
    client = redis.Redis.from_url(redis_url)
    stock = client.hget(keys.sale_key(sale_id), "stock") if uses_redis else None
    told_bought = {user_ids[i] for i, r in records.items() if r["told"] == "1"}
    admitted = {user_ids[i] for i, r in records.items() if r["status"] == 200}
    checks = {
        "orders": len(orders),
        "expected_orders": min(total, len(records)),
        "oversold": max(0, len(orders) - total)
        + (remaining < 0)
        + (stock is not None and int(stock) < 0),
        "duplicates": len(orders) - len(set(orders)),
        "lost": len(admitted ^ set(orders)) + len(told_bought ^ set(orders)),
        "5xx": sum(1 for r in records.values() if r["status"] >= 500 or r["told"] == "5xx"),
        "db_stock_ok": remaining == total - len(orders),
        "redis_stock_ok": stock is None or int(stock) == total - len(orders),
    }
    odd = [r for r in records.values() if r["status"] not in (200, 409)]
    checks["other_statuses"] = sorted({r["status"] for r in odd})
    if odd:
        print(f"unexpected answers ({len(odd)}), e.g. {odd[0]}", file=sys.stderr)
    checks["ok"] = (
        checks["oversold"] == 0
        and checks["duplicates"] == 0
        and checks["lost"] == 0
        and checks["5xx"] == 0
        and checks["orders"] == checks["expected_orders"]
        and checks["db_stock_ok"]
        and checks["redis_stock_ok"]
    )
    return checks


def wait_for_orders(app, sale_ids, timeout=300):
    """Until no admitted buyer waits for an order (queue empty) or the timeout."""
    from luffy.seckill import sales as seckill_sales

    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            if all(
                (seckill_sales.sale_status(s) or {}).get("queued") in (0, None) for s in sale_ids
            ):
                return True
            time.sleep(0.5)
    return False


def admission_checks(app, sales, runs):
    """Every admitted request of the admission runs has exactly one order; no 5xx."""
    from sqlalchemy import func, select

    from luffy.extensions import db
    from luffy.models import Order

    with app.app_context():
        counts = {
            sale_id: db.session.scalar(
                select(func.count()).select_from(Order).where(Order.sale_id == sale_id)
            )
            for _, sale_id in sales
        }
    admitted = sum(r["requests"] - r["non_2xx"] for r in runs)
    bad = sum(r["5xx"] for r in runs)
    return {"admitted": admitted, "orders": sum(counts.values()), "5xx": bad}


def start_worker(env):
    log = open(Path(env["BENCH_TMP"]) / "worker.log", "wb")  # noqa: SIM115 (the worker's, kept open)
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "-l",
            "WARNING",
            "-n",
            "bench-seckill@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process


def stop(process):
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cpu_seconds(process):
    """User + system CPU of a process and its children so far (from /proc), in seconds."""
    pids = [process.pid] + [
        int(p)
        for p in subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def note(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def times_line(name, values):
    return (
        f"{name}: p50 {percentile(values, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(values, 0.99) * 1000:.0f} ms, "
        f"max {max(values) * 1000:.0f} ms"
    )


def main():
    require_wrk()
    environment = Environment()
    worker = None
    try:
        env = {
            **environment.env,
            "SECKILL_ADDRESS_RATE": "100000000",
            "BENCH_TMP": str(environment.tmp),
        }
        os.environ.update(env)
        app, users_file, credentials, sales = prepare(environment.tmp)
        with app.app_context():
            from sqlalchemy import select

            from luffy.extensions import db
            from luffy.models import User

            user_ids = list(db.session.scalars(select(User.id).order_by(User.id)))
        burst_credentials = credentials[:BURST_BUYERS]
        burst_users = user_ids[:BURST_BUYERS]

        worker = start_worker(env)
        bare = LoggedGunicorn("bench.bare_seckill_app:app", env)
        try:
            wait_port(bare)
            modes = {}
            for mode, flag in FAST_PATH_MODES:
                modes[mode] = measure_luffy(
                    app,
                    bare,
                    {**env, "SECKILL_FAST_PATH": flag},
                    worker,
                    users_file,
                    sales,
                    mode,
                    credentials[-1],
                )
        finally:
            bare.stop()
        server = LoggedGunicorn("wsgi:app", env)  # the default: SECKILL_FAST_PATH on
        try:
            wait_port(server)
            course_id, burst_sale = sales["burst"][0]
            started = time.monotonic()
            records = asyncio.run(burst(server.url, BUY, burst_credentials, course_id, poll=True))
            burst_seconds = time.monotonic() - started
            orders_done = wait_for_orders(
                app, [s for mode, _ in FAST_PATH_MODES for _, s in sales[f"admission_{mode}"]]
            )
        finally:
            server.stop()
        with app.app_context():
            from luffy.seckill.reconcile import reconcile_sales

            report = reconcile_sales()
        checks = burst_checks(app, records, burst_users, burst_sale, env["REDIS_URL"])
        for mode, _ in FAST_PATH_MODES:  # [0]: the warm-up
            figures = modes[mode]
            figures["checks"] = admission_checks(
                app, sales[f"admission_{mode}"][1:], figures["admission_runs"]
            )
        on = modes["on"]
        baseline, admission, refusal = on["baseline"], on["admission"], on["refusal"]
        admission_runs, admitted = on["admission_runs"], on["checks"]
        worker_cpu, backlogs = on["worker_cpu"], on["backlogs"]

        server = LoggedGunicorn("bench.seckill_sync_app:app", env)
        try:
            wait_port(server)
            sync_rate, sync_runs = measure_admission(
                server.url, SYNC_BUY, users_file, sales["sync_admission"]
            )
            note(f"sync admission {sync_rate:.0f} req/s {sync_runs}")
            sync_course, sync_sale = sales["sync_burst"][0]
            started = time.monotonic()
            sync_records = asyncio.run(
                burst(server.url, SYNC_BUY, burst_credentials, sync_course, poll=False)
            )
            sync_seconds = time.monotonic() - started
        finally:
            server.stop()
        sync_checks = burst_checks(
            app, sync_records, burst_users, sync_sale, env["REDIS_URL"], uses_redis=False
        )

        all_final = [r["final"] for r in records.values()]
        admitted_final = [r["final"] for r in records.values() if r["status"] == 200]
        sync_final = [r["final"] for r in sync_records.values()]
        # wrk stops counting at its deadline: up to one request per connection was still in
        # flight, admitted by the server but not counted by wrk.
        in_flight = WRK_CONNECTIONS * len(admission_runs)
        for figures in modes.values():
            checked = figures["checks"]
            figures["admission_ok"] = (
                checked["5xx"] == 0
                and orders_done
                and checked["admitted"] <= checked["orders"] <= checked["admitted"] + in_flight
                and all(r["non_2xx"] == 0 for r in figures["admission_runs"])
            )
            figures["refusal_ok"] = all(
                r["5xx"] == 0 and r["409"] == r["requests"] for r in figures["refusal_runs"]
            )
        admission_ok = all(f["admission_ok"] for f in modes.values())
        refusal_ok = all(f["refusal_ok"] for f in modes.values())

        print(f"baseline_bare_flask: {baseline:.0f} req/s")
        print(
            f"admission: {admission:.0f} req/s (each a first-time buyer admitted; "
            f"{admitted['admitted']} "
            f"admitted, {admitted['orders']} orders written{'' if admission_ok else ', FAIL'})"
        )
        print(f"admission_vs_baseline: {admission / baseline:.2f} x (target >= {ADMISSION_TARGET})")
        print(
            f"worker_cpu_during_admission: {worker_cpu:.1f} s "
            f"for about {admitted['orders']} orders "
            f"({worker_cpu / max(1, admitted['orders']) * 1e6:.0f} us per order)"
        )
        print(
            f"order_backlog_at_end_of_each_admission_run: {backlogs} buyers "
            f"(the worker keeps up when these are a small part of a run's admissions)"
        )
        print(
            f"refusal_sold_out: {refusal:.0f} req/s{'' if refusal_ok else ' (FAIL: not all 409)'}"
        )
        print(f"refusal_vs_baseline: {refusal / baseline:.2f} x (target >= {REFUSAL_TARGET})")
        off = modes["off"]
        print(f"baseline_bare_flask_fast_path_off_run: {off['baseline']:.0f} req/s")
        print(
            f"admission_fast_path_off: {off['admission']:.0f} req/s "
            f"({off['checks']['admitted']} admitted, {off['checks']['orders']} orders written"
            f"{'' if off['admission_ok'] else ', FAIL'})"
        )
        print(
            f"admission_vs_baseline_fast_path_off: {off['admission'] / off['baseline']:.2f} x "
            f"(target >= {ADMISSION_TARGET})"
        )
        print(
            f"refusal_sold_out_fast_path_off: {off['refusal']:.0f} req/s"
            f"{'' if off['refusal_ok'] else ' (FAIL: not all 409)'}"
        )
        print(
            f"refusal_vs_baseline_fast_path_off: {off['refusal'] / off['baseline']:.2f} x "
            f"(target >= {REFUSAL_TARGET})"
        )
        print(f"sync_row_lock_admission: {sync_rate:.0f} req/s")
        print(f"admission_vs_sync_row_lock: {admission / sync_rate:.1f} x")
        print(
            f"burst: S={BURST_STOCK} N={len(records)} in {burst_seconds:.1f} s, "
            f"{checks['orders']} orders, oversold {checks['oversold']}, "
            f"duplicates {checks['duplicates']}, "
            f"lost {checks['lost']}, 5xx {checks['5xx']}, other {checks['other_statuses']} "
            f"{'ok' if checks['ok'] else 'FAIL'}"
        )
        print(times_line("final_answer_all_buyers", all_final))
        print(times_line("final_answer_admitted_buyers", admitted_final))
        print(
            f"sync_burst: S={BURST_STOCK} N={len(sync_records)} in {sync_seconds:.1f} s, "
            f"{sync_checks['orders']} orders, oversold {sync_checks['oversold']}, duplicates "
            f"{sync_checks['duplicates']}, lost {sync_checks['lost']}, 5xx {sync_checks['5xx']} "
            f"{'ok' if sync_checks['ok'] else 'FAIL'}"
        )
        print(times_line("sync_final_answer_all_buyers", sync_final))
        print(
            f"reconciliation_after_run: {len(report['problems'])} problems, "
            f"{sum(len(s['repaired']) for s in report['sales'])} repairs"
        )
        passed = (
            admission / baseline >= ADMISSION_TARGET
            and refusal / baseline >= REFUSAL_TARGET
            and admission_ok
            and refusal_ok
            and checks["ok"]
            and sync_checks["ok"]
            and not report["problems"]
        )
        print(
            f"headline: flash-sale admission = {admission / baseline:.2f}x bare Flask (target >= "
            f"{ADMISSION_TARGET}x), refusals {refusal / baseline:.2f}x (>= {REFUSAL_TARGET}x); "
            f"fast path off: {off['admission'] / off['baseline']:.2f}x and "
            f"{off['refusal'] / off['baseline']:.2f}x; "
            f"{admission / sync_rate:.1f}x the synchronous row-lock variant "
            f"{'PASS' if passed else 'FAIL'}"
        )
    except BaseException:
        for log in sorted(environment.tmp.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
        raise
    finally:
        if worker is not None:
            stop(worker)
        environment.close()


PORTS_TAKEN = set()


class LoggedGunicorn(Gunicorn):
    """harness.Gunicorn with its error log kept in the run's temporary folder."""

    def __init__(self, app_path, env, name=None):
        from local_redis import free_port

        # Two servers run at once (baseline and admission in turn): with reuse_port, the same
        # port twice would split wrk's connections between them, so never hand one out twice.
        self.port = free_port()
        while self.port in PORTS_TAKEN:
            self.port = free_port()
        PORTS_TAKEN.add(self.port)
        self.env = {
            **env,
            "WEB_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "8",
        }
        name = name or app_path.replace(":", "-")
        self.log_path = Path(env["BENCH_TMP"]) / f"gunicorn-{name}.log"
        self.process = subprocess.Popen(
            # --max-requests 0: no worker recycling (WEB_MAX_REQUESTS) inside a measured run;
            # the same flag for every server keeps the comparison fair.
            [
                str(BIN / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                "--access-logfile",
                "/dev/null",
                "--error-logfile",
                str(self.log_path),
                "--max-requests",
                "0",
                app_path,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"


def wait_port(server, timeout=30):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                time.sleep(0.5)  # every worker up
                return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn on {server.url} did not start")


if __name__ == "__main__":
    main()
