"""Banner API throughput vs a bare Flask route, and the cross-worker consistency bound.

    .venv/bin/python bench/banners.py        (or `make bench`)

Starts a private Redis and a seeded SQLite database, then, under the same
gunicorn command line (gunicorn.conf.py: 2 gthread workers x 8 threads, reuse_port):
the bare Flask baseline, Luffy's cached banner API, and the same app reading the database on
every request, all three up at once and measured in turn (a b c a b c ...). Each figure is
the median of 5 wrk runs of 5 s (-t2 -c32) after a warm-up.
Then, under load, a banner is edited through the ORM and fresh connections poll every
worker until they all serve the new title: the time of the last stale answer must be < 1 s.
"""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BIN, ROOT, Environment, Gunicorn, measure_interleaved, require_wrk  # noqa: E402

API = "/api/v1/home/banners/"
TARGET = 0.85


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def serve_and_measure(apps, env):
    """{app_path: req/s} for [(app_path, path)], all served at once and measured in turn."""
    servers = {}
    try:
        for app_path, path in apps:
            servers[app_path] = Gunicorn(app_path, env)
            servers[app_path].wait_ready(path)
        urls = {app_path: servers[app_path].url + path for app_path, path in apps}
        figures = measure_interleaved(list(urls.values()))
        return {app_path: figures[url] for app_path, url in urls.items()}
    finally:
        for server in servers.values():
            server.stop()


def consistency_after_edit(env):
    """Milliseconds from the commit to the last stale answer, polled across workers under load."""
    from luffy import create_app
    from luffy.extensions import db
    from luffy.models import Banner

    server = Gunicorn("wsgi:app", env)
    server.wait_ready(API)
    try:
        load = subprocess.Popen(
            [require_wrk(), "-t1", "-c16", "-d6s", server.url + API], stdout=subprocess.DEVNULL
        )
        time.sleep(1)
        app = create_app()
        new_title = f"edited-{time.time():.0f}"
        with app.app_context():
            banner = db.session.scalar(db.select(Banner).order_by(Banner.orders))
            banner.title = new_title
            db.session.commit()
        committed = time.monotonic()
        last_stale, fresh_in_a_row, polls = 0.0, 0, 0
        while fresh_in_a_row < 40 and time.monotonic() - committed < 5:
            titles = [b["title"] for b in fetch_json(server.url + API)["results"]]
            polls += 1
            if new_title in titles:
                fresh_in_a_row += 1
            else:
                fresh_in_a_row = 0
                last_stale = time.monotonic() - committed
            time.sleep(0.01)
        load.wait()
        return last_stale * 1000, polls, fresh_in_a_row >= 40
    finally:
        server.stop()


def main():
    require_wrk()
    environment = Environment()
    try:
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "seed-demo"],
            cwd=ROOT,
            env=environment.env,
            check=True,
            capture_output=True,
        )
        from luffy import create_app
        from luffy.home.banners import load_banners_from_database

        with create_app().app_context():
            payload = {"code": 100, "msg": "成功", "results": load_banners_from_database()}
        env = {**environment.env, "BENCH_PAYLOAD": json.dumps(payload, ensure_ascii=False)}

        figures = serve_and_measure(
            [
                ("bench.bare_app:app", API),
                ("wsgi:app", API),
                ("bench.uncached_app:app", "/bench/banners-uncached/"),
            ],
            env,
        )
        baseline, cached = figures["bench.bare_app:app"], figures["wsgi:app"]
        uncached = figures["bench.uncached_app:app"]
        stale_ms, polls, settled = consistency_after_edit(env)

        print(f"baseline_bare_flask: {baseline:.0f} req/s")
        print(f"cached_banner_api: {cached:.0f} req/s")
        print(f"uncached_database_query: {uncached:.0f} req/s")
        print(f"cached_vs_baseline: {cached / baseline:.2f} x")
        print(f"uncached_vs_baseline: {uncached / baseline:.2f} x")
        print(
            f"last_stale_answer_after_edit: {stale_ms:.0f} ms ({polls} polls, bound 1000 ms"
            f"{'' if settled and stale_ms < 1000 else ', FAIL'})"
        )
        verdict = "PASS" if cached / baseline >= TARGET and settled and stale_ms < 1000 else "FAIL"
        print(
            f"headline: cached banner API = {cached / baseline:.2f}x bare Flask "
            f"(target >= {TARGET}x) {verdict}"
        )
    finally:
        environment.close()


if __name__ == "__main__":
    main()
