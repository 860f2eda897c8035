"""The migration chain, run with the real command: empty -> head matches the models,
head -> base -> head.

Always on SQLite; on PostgreSQL too when LUFFY_TEST_DATABASE_URL names one (``make test-prod``).
Each run gets a database of its own, never the session's.
"""

import os
import subprocess
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import ROOT
from live_servers import BIN, environment
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from config import sqlalchemy_url


def flask_db(database_url, *args):
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", *args],
        cwd=ROOT,
        env=environment(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """The URL of a new, empty database of the given kind (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = os.environ.get("LUFFY_TEST_DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql")):
        pytest.skip(
            "PostgreSQL migrations run under `make test-prod` (LUFFY_TEST_DATABASE_URL unset)"
        )
    url = make_url(sqlalchemy_url(server))
    name = f"luffy_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def schema_differences(database_url):
    from luffy.extensions import db

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, db.metadata)
    finally:
        engine.dispose()


def tables(database_url):
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_models_and_downgrade_reaches_base(app, empty_database):
    from luffy.extensions import db

    flask_db(empty_database, "upgrade")
    assert tables(empty_database) >= {t.name for t in db.metadata.sorted_tables}
    assert schema_differences(empty_database) == []
    heads = flask_db(empty_database, "heads").stdout
    assert flask_db(empty_database, "current").stdout.split()[0] == heads.split()[0]

    flask_db(empty_database, "downgrade", "base")
    assert tables(empty_database) <= {"alembic_version"}

    flask_db(empty_database, "upgrade")  # and up again: downgrades leave nothing behind
    assert schema_differences(empty_database) == []
