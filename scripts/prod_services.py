"""``make test-prod``'s gate: exit 0 when PostgreSQL and the AMQP broker answer, else say why, exit 1.

Usage: ``prod_services.py DATABASE_URL BROKER_URL``. Only connects; creates nothing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIMEOUT_SECONDS = 3


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
        return f"PostgreSQL at {url} does not answer ({type(error).__name__}: {str(error).strip().splitlines()[0][:200]})"
    return None


def broker_problem(url):
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as connection:
            connection.ensure_connection(max_retries=0, timeout=TIMEOUT_SECONDS)
    except Exception as error:
        return f"the broker at {url} does not answer ({type(error).__name__}: {str(error).strip().splitlines()[0][:200]})"
    return None


def main(database_url, broker_url):
    problems = [p for p in (database_problem(database_url), broker_problem(broker_url)) if p]
    for problem in problems:
        print(f"make test-prod SKIPPED: {problem}.")
    if problems:
        print(
            "Start PostgreSQL and RabbitMQ (or set TEST_PROD_DATABASE_URL / TEST_PROD_BROKER_URL) "
            "to run the production matrix."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
