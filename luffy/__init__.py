"""Luffy: the application factory."""

import logging
from pathlib import Path

from flask import Flask, current_app

from config import config_for_environment


def create_app(config_class=None):
    """Build the Flask app: config, extensions, blueprints, errors, CLI, admin, Celery."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.from_object((config_class or config_for_environment())())
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_admin(app)
    register_celery(app)
    register_middleware(app)
    return app


def configure_logging(app):
    if app.config.get("LOG_JSON"):
        from luffy.logs import log_json_to_stdout

        log_json_to_stdout(app.config["LOG_LEVEL"])
    elif not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def register_extensions(app):
    from luffy import beat, metrics, redis_store
    from luffy.auth.login import init_login
    from luffy.extensions import babel, cache, csrf, db, mail, migrate
    from luffy.home import banners
    from luffy.sessions import SignedCookieSessions

    app.session_interface = SignedCookieSessions()
    db.init_app(app)
    migrate.init_app(
        app, db, render_as_batch=True, directory=str(Path(app.root_path).parent / "migrations")
    )
    redis_store.init_app(app)  # before the cache: it names the cache's Redis
    cache.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    init_login(app)
    # One language (BABEL_DEFAULT_LOCALE) and one time zone: every page's times in TIMEZONE.
    babel.init_app(app, timezone_selector=site_timezone)
    metrics.init_app(app)
    banners.init_app(app)
    beat.init_app(app)  # every schedule write marks it changed for beat


def site_timezone():
    """Flask-Babel's time zone: the site's, read per request like every setting."""
    return current_app.config["TIMEZONE"]


def register_blueprints(app):
    from luffy.auth import bp as auth_bp
    from luffy.courses import bp as courses_bp
    from luffy.dashboard import bp as monitoring_bp
    from luffy.health import bp as health_bp
    from luffy.home import bp as home_bp
    from luffy.media import bp as media_bp
    from luffy.notify import bp as notify_bp
    from luffy.orders import bp as orders_bp
    from luffy.sales import bp as sales_bp
    from luffy.seckill import bp as seckill_bp
    from luffy.tasks_api import bp as tasks_api_bp

    for blueprint in (
        home_bp,
        auth_bp,
        health_bp,
        media_bp,
        tasks_api_bp,
        notify_bp,
        monitoring_bp,
        seckill_bp,
        courses_bp,
        sales_bp,
        orders_bp,
    ):
        app.register_blueprint(blueprint)


def register_error_handlers(app):
    from luffy import errors

    errors.init_app(app)


def register_commands(app):
    from luffy import cli, jobs

    cli.init_app(app)
    jobs.init_app(app)  # flask jobs


def register_admin(app):
    from luffy.admin import init_admin

    init_admin(app)


def register_middleware(app):
    """Outermost WSGI layers, after the blueprints added theirs (the flash sale's fast path):
    security headers on every answer, and the client's real address behind the reverse proxy."""
    from luffy import headers, proxy

    headers.init_app(app)
    proxy.init_app(app)


def register_celery(app):
    from luffy.celery_init import celery_init_app

    celery_init_app(app)
