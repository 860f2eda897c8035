"""``make test-prod``'s gate: may the production matrix run? Only connects; creates nothing.

Usage: ``prod_services.py DATABASE_URL BROKER_URL``. Exit status: 0 when PostgreSQL and the
AMQP broker answer; else it says why and exits 3 (the matrix is skipped) or, on a CI runner
(``CI=true``), 1: CI must not go green on a matrix that never ran.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIMEOUT_SECONDS = 3


def first_line(error):
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:200]}"


def database_problem(url):
    from sqlalchemy import create_engine, text

    from config import sqlalchemy_url

    try:
        engine = create_engine(
            sqlalchemy_url(url), connect_args={"connect_timeout": TIMEOUT_SECONDS}
        )
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure means "not usable here"; the message says which
        return f"PostgreSQL at {url} does not answer ({first_line(error)})"
    return None


def broker_problem(url):
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as connection:
            connection.ensure_connection(max_retries=0, timeout=TIMEOUT_SECONDS)
    except Exception as error:
        return f"the broker at {url} does not answer ({first_line(error)})"
    return None


SKIPPED = 3


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def main(database_url, broker_url):
    problems = [p for p in (database_problem(database_url), broker_problem(broker_url)) if p]
    if not problems:
        return 0
    verdict = "FAILED (CI=true)" if in_ci() else "SKIPPED"
    for problem in problems:
        print(f"make test-prod {verdict}: {problem}.")
    print(
        "Start PostgreSQL and RabbitMQ (or set TEST_PROD_DATABASE_URL / TEST_PROD_BROKER_URL) "
        "to run the production matrix."
    )
    return 1 if in_ci() else SKIPPED


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
