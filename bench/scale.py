"""Flash-sale order throughput with 1 and 2 worker processes, on Redis and RabbitMQ brokers.

    .venv/bin/python bench/scale.py [--orders 3000] [--repetitions 3]

Against PostgreSQL (a fresh database on BENCH_DATABASE_URL, default the local server), a private
Redis for stock, and each broker (a private Redis db 1; RabbitMQ on BENCH_AMQP_URL in a fresh
vhost). Each run admits ``--orders`` buyers through the real Lua gate while no worker consumes
the seckill queue, then starts consuming on every worker process at once and times the orders
appearing in the database: ``orders/s`` over the time from the first committed batch to the
last. The worker processes are separate ``celery -A tasks worker -c 1`` instances (as on
separate hosts).
CPU seconds per process group over the drain say which resource saturates. A run that does not
end with exactly one order per admitted buyer and zero stock is a failed run.
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from local_redis import free_port, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def note(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- servers -----------------------------------------------------------------------------------
def fresh_postgres_database():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from config import sqlalchemy_url

    server = make_url(sqlalchemy_url(DATABASE_URL))
    name = f"luffy_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(
        server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def fresh_rabbitmq_vhost():
    """(broker URL, cleanup) in a new vhost, or (None, reason) when RabbitMQ is not usable."""
    from urllib.parse import urlsplit, urlunsplit

    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=0, timeout=3)
    except Exception as error:
        return None, f"no RabbitMQ at {AMQP_URL} ({type(error).__name__})"
    if not shutil.which("rabbitmqctl"):
        return None, "rabbitmqctl not found (needed for a vhost of the benchmark's own)"
    vhost = f"luffy_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(AMQP_URL)
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*ctl, "set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    url = urlunsplit(parts._replace(path="/" + vhost))
    return url, lambda: subprocess.run(
        [*ctl, "delete_vhost", vhost], capture_output=True, timeout=60
    )


# -- CPU accounting from /proc ---------------------------------------------------------------------
def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def process_tree(root_pid):
    pids, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop()
        pids.append(pid)
        with contextlib.suppress(OSError):
            frontier += [
                int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            ]
    return pids


def pids_named(name):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# -- one benchmark set-up --------------------------------------------------------------------------
class Setup:
    """A migrated PostgreSQL database, a private Redis for stock, one broker, and buyers."""

    def __init__(self, tmp, database_url, redis, redis_port, broker_url, buyers):
        self.tmp, self.broker_url, self.redis_pid = tmp, broker_url, redis.pid
        self.env = {
            **os.environ,
            "LUFFY_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CELERY_BROKER_URL": broker_url,
            "UPLOAD_DIR": str(tmp / "uploads"),
            "LOG_JSON": "0",
        }
        os.environ.update(self.env)
        from luffy import create_app

        self.app = create_app()
        self.buyers = buyers

    def admit_everyone(self, count):
        """A new sale of ``count`` units, and ``count`` buyers admitted by the Lua gate."""
        from luffy.extensions import db
        from luffy.models import Course, Sale
        from luffy.models.base import utcnow
        from luffy.seckill import admission as seckill_admission
        from luffy.seckill import sales as seckill_sales

        with self.app.app_context():
            course = Course(name=f"bench-{uuid.uuid4().hex[:6]}", price="99.00")
            db.session.add(course)
            db.session.flush()
            now = utcnow()
            sale = Sale(
                course_id=course.id,
                price="9.90",
                total_stock=count,
                remaining_stock=count,
                start_at=now - timedelta(seconds=60),
                end_at=now + timedelta(hours=1),
            )
            db.session.add(sale)
            db.session.commit()
            assert seckill_sales.warm_sale(sale)
            for i, user_id in enumerate(self.buyers[:count]):
                seckill_admission.admit(
                    user_id, course.id, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                )
            return sale.id

    def order_count(self, sale_id):
        from sqlalchemy import func, select

        from luffy.extensions import db
        from luffy.models import Order

        with self.app.app_context():
            count = db.session.scalar(
                select(func.count()).select_from(Order).where(Order.sale_id == sale_id)
            )
            db.session.remove()
            return count

    def check_exact(self, sale_id, count):
        from sqlalchemy import func, select

        from luffy.extensions import db
        from luffy.models import Order, Sale

        with self.app.app_context():
            orders = db.session.scalar(
                select(func.count()).select_from(Order).where(Order.sale_id == sale_id)
            )
            users = db.session.scalar(
                select(func.count(func.distinct(Order.user_id))).where(Order.sale_id == sale_id)
            )
            left = db.session.scalar(select(Sale.remaining_stock).where(Sale.id == sale_id))
            db.session.remove()
        if not orders == users == count or left != 0:
            raise SystemExit(
                f"FAILED RUN: {orders} orders for {users} users, {left} left of {count}"
            )

    def start_workers(self, count):
        """``count`` worker processes that do not consume the seckill queue yet."""
        workers = []
        for n in range(count):
            log = self.tmp / f"worker-{n}-{uuid.uuid4().hex[:4]}.log"
            process = subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "tasks",
                    "worker",
                    "-l",
                    "INFO",
                    "-c",
                    "1",
                    "-n",
                    f"scale{n}-{uuid.uuid4().hex[:4]}@%h",
                    "-Q",
                    "default",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=open(log, "wb"),  # noqa: SIM115 (the process writes to it until it stops)
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            process.log = log
            workers.append(process)
        deadline = time.monotonic() + 90
        while not all(" ready." in w.log.read_text(errors="replace") for w in workers):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit(
                    "workers did not start:\n" + workers[0].log.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)
        return workers

    def stop_workers(self, workers):
        import signal

        # SIGTERM to the main process only: a warm shutdown lets a running order task finish
        # (a signal to the whole group would kill the pool child mid-task).
        for worker in workers:
            os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    def wait_idle(self):
        """No order task left over from the previous run: no drain lock, kick or queued ticket."""
        from luffy.redis_store import get_redis
        from luffy.seckill.keys import KICK_KEY, LOCK_KEYS, PENDING_KEY, PROCESSING_KEYS

        with self.app.app_context():
            redis = get_redis()
            deadline = time.monotonic() + 60
            while redis.exists(*LOCK_KEYS, KICK_KEY) or any(
                redis.llen(key) for key in (PENDING_KEY, *PROCESSING_KEYS)
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(
                        "FAILED RUN: flash-sale state still busy 60 s after the last run"
                    )
                time.sleep(0.1)

    def run(self, processes, orders):
        """One drain: orders per second, and CPU seconds per process group during it."""
        self.wait_idle()
        sale_id = self.admit_everyone(orders)
        workers = self.start_workers(processes)
        groups = {f"worker {n + 1}": lambda w=w: process_tree(w.pid) for n, w in enumerate(workers)}
        groups["postgres"] = lambda: pids_named("postgres")  # the whole server, whoever uses it
        groups["redis"] = lambda: [self.redis_pid]
        try:
            # Every worker starts taking flash-sale messages at the same moment.
            self.app.extensions["celery"].control.add_consumer(
                "seckill", destination=[self.hostname(w) for w in workers], reply=True, timeout=10
            )
            # Timed from the first committed batch: how soon a consumer notices a new queue
            # (up to a second with the Redis transport's polling) is not order throughput.
            first, deadline = None, time.monotonic() + 600
            while True:
                done = self.order_count(sale_id)
                now = time.monotonic()
                if done and first is None:
                    first = (
                        now,
                        done,
                        {name: cpu_seconds(pids()) for name, pids in groups.items()},
                    )
                if done >= orders:
                    break
                if now > deadline:
                    raise SystemExit(f"FAILED RUN: {done} of {orders} orders after 600 s")
                time.sleep(0.02)
            cpu = {
                name: max(0.0, cpu_seconds(pids()) - first[2][name])
                for name, pids in groups.items()
            }
        finally:
            self.stop_workers(workers)
        self.check_exact(sale_id, orders)
        seconds = max(now - first[0], 1e-3)
        return (done - first[1]) / seconds, {name: used / seconds for name, used in cpu.items()}

    @staticmethod
    def hostname(worker):
        text = worker.log.read_text(errors="replace")
        start = text.index(" -------------- ") + len(" -------------- ")
        return text[start:].split(" ", 1)[0]


def make_buyers(database_url, count):
    from sqlalchemy import create_engine, insert

    from config import sqlalchemy_url
    from luffy.models import User
    from luffy.models.base import utcnow

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {
                    "username": f"scale{i}",
                    "password_hash": "",
                    "is_admin": False,
                    "is_active": True,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for i in range(count)
            ],
        )
    with engine.connect() as conn:
        from sqlalchemy import select

        ids = list(conn.scalars(select(User.id).order_by(User.id)))
    engine.dispose()
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="luffy-scale-"))
    cleanups = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    try:
        try:
            database_url, drop = fresh_postgres_database()
        except Exception as error:
            print(f"scale: skipped, no PostgreSQL at {DATABASE_URL} ({type(error).__name__})")
            return 0
        cleanups.append(drop)
        redis_port = free_port()
        redis = start_redis(redis_port, tmp / "redis")
        cleanups.append(lambda: (redis.terminate(), redis.wait()))
        env = {**os.environ, "DATABASE_URL": database_url, "LUFFY_ENV": "development"}
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        buyers = make_buyers(database_url, args.orders)

        brokers = {"redis": f"redis://127.0.0.1:{redis_port}/1"}
        amqp, cleanup_or_reason = fresh_rabbitmq_vhost()
        if amqp:
            brokers["rabbitmq"] = amqp
            cleanups.append(cleanup_or_reason)
        else:
            print(f"note: RabbitMQ runs skipped: {cleanup_or_reason}")

        results, usage = {}, {}
        for broker, url in brokers.items():
            setup = Setup(tmp, database_url, redis, redis_port, url, buyers)
            for processes in (1, 2):
                runs = []
                setup.run(
                    processes, min(500, args.orders)
                )  # warm-up: connections, caches, JIT of plans
                for repetition in range(args.repetitions):
                    rate, cpu = setup.run(processes, args.orders)
                    note(
                        f"{broker}, {processes} worker process(es), run {repetition + 1}: "
                        f"{rate:,.0f} orders/s"
                    )
                    runs.append((rate, cpu))
                runs.sort(key=lambda r: r[0])
                results[broker, processes], usage[broker, processes] = runs[len(runs) // 2]

        for (broker, processes), rate in results.items():
            print(
                f"orders_{broker}_{processes}_worker{'s' if processes > 1 else ''}: "
                f"{rate:.0f} orders/s"
            )
        for (broker, processes), cpu in usage.items():
            busy = ", ".join(f"{name} {share:.0%}" for name, share in cpu.items())
            print(f"cpu_{broker}_{processes}: {busy} of one core")
        for broker in brokers:
            print(f"ratio_2_vs_1_{broker}: {results[broker, 2] / results[broker, 1]:.2f}x")
        if "rabbitmq" in brokers:
            print(
                "ratio_rabbitmq_vs_redis_1_worker: "
                f"{results['rabbitmq', 1] / results['redis', 1]:.2f}x"
            )
        headline = results["redis", 2] / results["redis", 1]
        if explain(usage["redis", 2]):
            verdict = (
                "not a scaling gain: the second process did no work, "
                "the difference is run-to-run noise"
            )
        else:
            verdict = f"target >= 1.5x: {'PASS' if headline >= 1.5 else 'FAIL'}"
        print(
            "scale (2 worker processes vs 1, PostgreSQL, Redis broker): "
            f"{headline:.2f}x ({verdict})"
        )
        return 0
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as error:  # a failed cleanup must not hide the figures
                note(f"cleanup failed: {error}")


def explain(two):
    """Say which resource saturates when a second worker process does not help; True if idle."""
    workers_two = [share for name, share in two.items() if name.startswith("worker")]
    total = sum(two.values())
    print(
        "why: with 2 worker processes the workers used "
        f"{', '.join(f'{s:.0%}' for s in workers_two)} "
        f"of a core, the PostgreSQL server {two['postgres']:.0%}, Redis {two['redis']:.0%} "
        f"({total:.0%} of one core in all, on {os.cpu_count()} cores)."
    )
    if min(workers_two) < 0.10:
        print(
            "why: one worker process did all the work: the second never got a drain slot "
            "(SECKILL_DRAIN_SLOTS below 2, or the backlog never exceeded SECKILL_BATCH_SIZE, so "
            "no second order task was sent)."
        )
        return True
    if total > 0.8 * (os.cpu_count() or 1):
        print("why: the machine's cores are saturated (workers + PostgreSQL + Redis).")
    return False


if __name__ == "__main__":
    sys.exit(main())
