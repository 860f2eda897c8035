"""Luffy's configuration: every environment variable, read once, with a safe default."""

import os
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")

DEV_SECRET_KEY = "dev-only-secret-key-change-me"
# Production refuses these keys (and any key shorter than MIN_SECRET_KEY_LENGTH): the
# development default and the placeholders of deploy/luffy.env.example and the docs.
EXAMPLE_SECRET_KEYS = {DEV_SECRET_KEY, "change-me", "changeme", "secret", "test-secret-key"}
MIN_SECRET_KEY_LENGTH = 32


def env(name, default=None):
    """The environment variable ``name``, or ``default`` when unset or empty."""
    value = os.environ.get(name, "")
    return value if value.strip() else default


def env_int(name, default):
    return int(env(name, str(default)))


def env_float(name, default):
    return float(env(name, str(default)))


def env_bool(name, default):
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def sqlalchemy_url(url):
    """Map the short URL schemes people paste to the driver Luffy installs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Config:
    """Settings shared by every environment, read from the environment when the app is built."""

    ENV_NAME = "development"
    TESTING = False
    DEBUG = False

    def __init__(self):
        instance = BASE_DIR / "instance"
        self.INSTANCE_DIR = str(instance)
        self.SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
        self.SQLALCHEMY_DATABASE_URI = sqlalchemy_url(
            env("DATABASE_URL", f"sqlite:///{instance / 'luffy.db'}")
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        # One server (redis://), a Sentinel-watched master (redis+sentinel://) or a Cluster
        # (redis+cluster://, or REDIS_CLUSTER=1 with any node's redis:// URL): luffy/redis_urls.py.
        self.REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
        # Where `make run`'s own redis-server (started when nothing answers at a local Redis
        # URL) keeps its append-only file, so queued messages survive its restart.
        self.LOCAL_REDIS_DIR = env("LOCAL_REDIS_DIR", str(instance / "redis"))
        # Every Redis call gives up after this long, so an outage degrades, never hangs.
        self.REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.25)
        self.TIMEZONE = env("TIMEZONE", "Asia/Shanghai")
        # Flask-Babel: every page in Simplified Chinese (Flask-Admin ships its words under this
        # locale's name); its ``datetimeformat`` filter shows times in TIMEZONE (luffy/__init__).
        self.BABEL_DEFAULT_LOCALE = "zh_Hans_CN"
        self.BANNER_COUNT = env_int("BANNER_COUNT", 5)
        # Redis copy of the banner list: a safety-net TTL behind invalidate-on-write.
        self.BANNER_CACHE_TTL = env_int("BANNER_CACHE_TTL", 300)
        # How long a web process trusts its in-memory copy before checking Redis again.
        self.BANNER_LOCAL_TTL = env_float("BANNER_LOCAL_TTL", 0.5)
        self.BANNER_REFRESH_SECONDS = env_int("BANNER_REFRESH_SECONDS", 60)
        # Flash sale: buy requests per second allowed per user and per client address (429 above).
        self.SECKILL_USER_RATE = env_int("SECKILL_USER_RATE", 5)
        self.SECKILL_ADDRESS_RATE = env_int("SECKILL_ADDRESS_RATE", 300)
        # Admitted buyers turned into orders per database transaction by the order task.
        self.SECKILL_BATCH_SIZE = env_int("SECKILL_BATCH_SIZE", 200)
        # Order tasks that may write one sale's orders at once (1 to 8), each on its own batch.
        self.SECKILL_DRAIN_SLOTS = env_int("SECKILL_DRAIN_SLOTS", 2)
        # How often beat runs the flash-sale reconciliation, and how long a result is kept.
        self.SECKILL_RECONCILE_SECONDS = env_int("SECKILL_RECONCILE_SECONDS", 30)
        self.SECKILL_RESULT_TTL = env_int("SECKILL_RESULT_TTL", 86400)
        # The flash sale's fast path (luffy/seckill/fast_path.py): sold-out refusals answered
        # before Flask builds a request. Off: every buy request goes through the Flask view.
        self.SECKILL_FAST_PATH = env_bool("SECKILL_FAST_PATH", True)
        self.UPLOAD_DIR = env("UPLOAD_DIR", str(instance / "uploads"))
        self.MAX_CONTENT_LENGTH = 4 * 1024 * 1024

        # CACHE_TYPE and its address follow REDIS_URL (Redis, Sentinel or Cluster cache), set
        # by luffy.redis_store.init_app when the app is built.
        # Never empty: an empty prefix makes cache.clear() FLUSHDB,
        # which would wipe the broker queue and the sale stock sharing that Redis.
        self.CACHE_KEY_PREFIX = "luffy:cache:"
        self.CACHE_DEFAULT_TIMEOUT = 300
        self.CACHE_OPTIONS = {
            "socket_timeout": self.REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": self.REDIS_SOCKET_TIMEOUT,
        }

        self.MAIL_SERVER = env("MAIL_SERVER", "127.0.0.1")
        self.MAIL_PORT = env_int("MAIL_PORT", 25)
        self.MAIL_USE_SSL = env_bool("MAIL_USE_SSL", False)
        self.MAIL_USE_TLS = env_bool("MAIL_USE_TLS", False)
        self.MAIL_USERNAME = env("MAIL_USERNAME")
        self.MAIL_PASSWORD = env("MAIL_PASSWORD")
        self.MAIL_DEFAULT_SENDER = env("MAIL_DEFAULT_SENDER", "Luffy <noreply@luffy.local>")
        # Flask-Mail turns sending off when TESTING; Luffy's tests use a real SMTP server.
        self.MAIL_SUPPRESS_SEND = env_bool("MAIL_SUPPRESS_SEND", False)
        # Seconds before an SMTP connect or reply gives up (Flask-Mail alone waits forever).
        self.MAIL_TIMEOUT = env_float("MAIL_TIMEOUT", 10)
        self.ALERT_EMAILS = env_list("ALERT_EMAILS")
        # At most one alert mail per task name (or key) per this many seconds.
        self.ALERT_THROTTLE_SECONDS = env_int("ALERT_THROTTLE_SECONDS", 60)
        # SMS: "console" (logs the text), "http" (POSTs to SMS_HTTP_URL) or a dotted class path.
        self.SMS_BACKEND = env("SMS_BACKEND", "console")
        self.SMS_HTTP_URL = env("SMS_HTTP_URL")
        self.SMS_HTTP_TOKEN = env("SMS_HTTP_TOKEN")
        self.SMS_HTTP_TIMEOUT = env_float("SMS_HTTP_TIMEOUT", 5)
        self.SMS_CODE_TTL = env_int("SMS_CODE_TTL", 300)
        # One code per mobile per SMS_MOBILE_INTERVAL s; SMS_ADDRESS_LIMIT per address per hour.
        self.SMS_MOBILE_INTERVAL = env_int("SMS_MOBILE_INTERVAL", 60)
        self.SMS_ADDRESS_LIMIT = env_int("SMS_ADDRESS_LIMIT", 10)

        self.REMEMBER_COOKIE_DURATION = timedelta(days=14)
        # A CSRF token (and so a form left open) is good for this many seconds (Flask-WTF).
        self.WTF_CSRF_TIME_LIMIT = env_int("WTF_CSRF_TIME_LIMIT", 8 * 3600)
        # Number of reverse proxies in front of gunicorn (0: none). With 1 or more, Flask's
        # request.remote_addr is the client address the nearest proxy saw, read from
        # X-Forwarded-For, but only on connections from FORWARDED_ALLOW_IPS (luffy/proxy.py).
        self.PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 1)
        self.FORWARDED_ALLOW_IPS = forwarded_allow_ips()
        # Login throttling (luffy/auth/throttle.py): after this many failed logins for one
        # username, or from one client address, within LOGIN_WINDOW_SECONDS, every login
        # attempt for it is refused (429) until the window ends.
        self.LOGIN_USER_LIMIT = env_int("LOGIN_USER_LIMIT", 5)
        self.LOGIN_ADDRESS_LIMIT = env_int("LOGIN_ADDRESS_LIMIT", 30)
        self.LOGIN_WINDOW_SECONDS = env_int("LOGIN_WINDOW_SECONDS", 900)
        # Security headers (luffy/headers.py); HSTS only in production (HTTPS behind the proxy).
        self.HSTS_SECONDS = 0
        # Text lines for a terminal; LOG_JSON=1 (production's default) writes one JSON object
        # per line to stdout for a log shipper (luffy/logs.py).
        self.LOG_LEVEL = env("LOG_LEVEL", "INFO").upper()
        self.LOG_JSON = env_bool("LOG_JSON", False)
        # GET /metrics wants "Authorization: Bearer <METRICS_TOKEN>"; unset, it refuses everyone.
        self.METRICS_TOKEN = env("METRICS_TOKEN")
        # Flower's address, linked from the admin's bar when set (e.g. https://ops.example/flower/).
        self.FLOWER_URL = env("FLOWER_URL")
        # Seconds the monitoring dashboard and /metrics wait for worker replies (ping/inspect).
        self.MONITOR_INSPECT_TIMEOUT = env_float("MONITOR_INSPECT_TIMEOUT", 1.0)
        # Beat (luffy/beat/scheduler.py): a waiting beat takes over this long after the holder
        # of luffy:beat:lock stops renewing it; everything is reloaded this often even
        # without an edit; edits are looked for this often.
        self.BEAT_LOCK_TIMEOUT = env_float("BEAT_LOCK_TIMEOUT", 30)
        self.BEAT_FULL_RELOAD_SECONDS = env_float("BEAT_FULL_RELOAD_SECONDS", 300)
        self.BEAT_CHANGE_CHECK_SECONDS = env_float("BEAT_CHANGE_CHECK_SECONDS", 0.5)

        # Jobs (luffy/jobs/): the packages whose tasks enqueue() and `flask jobs enqueue` may
        # run (comma-separated), and the RabbitMQ management API used to list waiting messages
        # (http://user:password@host:15672; unset, RabbitMQ queues show counts only).
        self.JOBS_PACKAGES = env_list("JOBS_PACKAGES", "tasks")
        self.JOBS_RABBITMQ_MANAGEMENT_URL = env("JOBS_RABBITMQ_MANAGEMENT_URL")
        # Order exports (CSV) are kept this many seconds (the export job's result_ttl).
        self.JOBS_EXPORT_TTL = env_int("JOBS_EXPORT_TTL", 3600)
        self.JOBS_EXPORT_DIR = env("JOBS_EXPORT_DIR", str(instance / "exports"))

        broker_url = env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
        # Default: luffy.celery_results, the task_results table the admin shows.
        result_backend = env("CELERY_RESULT_BACKEND", "luffy.celery_results:DatabaseBackend")
        self.CELERY = celery_settings(
            broker_url=broker_url,
            result_backend=result_backend,
            timezone=self.TIMEZONE,
            banner_refresh_seconds=self.BANNER_REFRESH_SECONDS,
            instance_dir=instance,
            seckill_reconcile_seconds=self.SECKILL_RECONCILE_SECONDS,
            visibility_timeout=env_int("CELERY_VISIBILITY_TIMEOUT", 12 * 3600),
            extra_imports=env_list("CELERY_EXTRA_IMPORTS"),
        )
        # Each worker keeps its revoked task ids in this file (%n: the worker's name), so a
        # revoke survives a worker restart (workers keep revoked ids in memory only otherwise);
        # "off" keeps them in memory only.
        state_db = env("WORKER_STATE_DB", str(instance / "worker-%n.state"))
        if state_db.lower() != "off":
            self.CELERY["worker_state_db"] = state_db


TASK_QUEUES = ("default", "seckill", "notify", "periodic")


def celery_settings(
    broker_url,
    result_backend,
    timezone,
    banner_refresh_seconds,
    instance_dir,
    visibility_timeout=12 * 3600,
    extra_imports=(),
    seckill_reconcile_seconds=30,
):
    """Celery's settings, lower-case as Celery names them (see README, "Celery settings")."""
    # A message not acked within this many seconds is delivered again by the Redis
    # transport (its visibility timeout; at-least-once delivery). Longer countdowns/etas are still
    # run once: FlaskTask skips a second delivery of a delayed task (luffy/celery_init.py). Sweep
    # for such messages often enough that a short timeout (CELERY_VISIBILITY_TIMEOUT) is honoured.
    restore_every = max(1, min(10, visibility_timeout // 3))
    settings = {
        "broker_url": broker_url,
        "result_backend": result_backend,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1 if visibility_timeout < 600 else 10,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
        "timezone": timezone,
        "enable_utc": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_extended": True,
        "result_expires": timedelta(days=7),
        "task_track_started": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task running when the broker connection is lost is stopped: its message goes back
        # to the queue (RabbitMQ requeues it, luffy/redis_broker.py puts it back on Redis) and
        # runs again after the reconnect, instead of a second copy running beside the first.
        # Celery 6 makes this the default.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": 300,
        "task_soft_time_limit": 240,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Separate queues so a mail storm never delays orders; a plain
        # `celery -A tasks worker` consumes all of them, production workers pick with -Q.
        # Each queue has its own direct exchange and routing key: a message for one queue
        # (even one published by hand to exchange "default", routing key "default") is
        # delivered to that queue only, never copied into all of them.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in TASK_QUEUES
        ],
        "task_default_queue": "default",
        "task_default_exchange": "default",
        "task_default_routing_key": "default",
        "task_routes": {
            "tasks.seckill.*": {"queue": "seckill"},
            "tasks.user.send_email": {"queue": "notify"},
            "tasks.order.send_sms": {"queue": "notify"},
            "tasks.alerts.*": {"queue": "notify"},
            "tasks.home.*": {"queue": "periodic"},
            "celery.backend_cleanup": {"queue": "periodic"},
        },
        "imports": [
            "tasks.home",
            "tasks.user",
            "tasks.order",
            "tasks.alerts",
            "tasks.seckill",
            "tasks.export",
            *extra_imports,
        ],
        # The schedule lives in the database and is edited in the admin; these
        # beat_schedule entries become rows on beat's first start (luffy/beat/).
        "beat_scheduler": "luffy.beat.scheduler:DatabaseScheduler",
        "beat_schedule": {
            "refresh-banner-cache": {
                "task": "tasks.home.update_banner",
                "schedule": float(banner_refresh_seconds),
            },
            "seckill-reconcile": {
                "task": "tasks.seckill.reconcile",
                "schedule": float(seckill_reconcile_seconds),
            },
        },
    }
    # kombu's Redis transports with a fix: a worker holding unacked messages survives a
    # Redis restart and puts them back at once (luffy/redis_broker.py explains). rediss://
    # keeps kombu's own: kombu sets up TLS only for that transport name.
    if broker_url.startswith("redis://"):
        settings["broker_transport"] = "luffy.redis_broker:Transport"
    elif broker_url.startswith("redis+sentinel://"):
        settings["broker_transport"] = "luffy.redis_broker:SentinelTransport"
    return settings


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    DEBUG = False


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True


class ProductionConfig(Config):
    ENV_NAME = "production"

    def __init__(self):
        super().__init__()
        refuse_weak_secret_key(self.SECRET_KEY)
        self.HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 86400)
        # Cookies only over HTTPS (gunicorn trusts X-Forwarded-Proto from FORWARDED_ALLOW_IPS),
        # never readable from JavaScript, not sent on cross-site POSTs.
        self.SESSION_COOKIE_SECURE = True
        self.REMEMBER_COOKIE_SECURE = True
        self.SESSION_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.PREFERRED_URL_SCHEME = "https"
        # No debugger, no tracebacks in pages: errors go to the log, users get errors/error.html.
        self.DEBUG = False
        self.PROPAGATE_EXCEPTIONS = False
        self.LOG_JSON = env_bool("LOG_JSON", True)


def refuse_weak_secret_key(key):
    """Production starts only with a real secret: not an example value, not a short one."""
    if not key or key == DEV_SECRET_KEY:
        raise RuntimeError("LUFFY_ENV=production needs SECRET_KEY set to a secret value.")
    if key.strip().lower() in EXAMPLE_SECRET_KEYS or "change-me" in key.lower():
        raise RuntimeError(
            "LUFFY_ENV=production needs SECRET_KEY set to a secret value, not the example "
            f"{key!r}: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise RuntimeError(
            f"LUFFY_ENV=production needs SECRET_KEY of at least {MIN_SECRET_KEY_LENGTH} "
            f"characters (this one has {len(key)}): "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for_environment():
    """The config class named by LUFFY_ENV (default development)."""
    name = env("LUFFY_ENV", "development")
    if name not in CONFIGS:
        raise RuntimeError(f"LUFFY_ENV must be one of {sorted(CONFIGS)}, not {name!r}.")
    return CONFIGS[name]


def flower_settings(argv):
    """Flower's settings (read by flowerconfig.py); ``argv`` is Flower's command line.

    Basic auth is required: FLOWER_BASIC_AUTH (``user:password``, several comma-separated),
    ``--basic-auth``/``--auth`` on the command line, or FLOWER_AUTH (Flower's OAuth e-mail
    pattern). Without any, development generates a password (printed by flowerconfig.py)
    and any other LUFFY_ENV refuses to start.
    """
    basic_auth = env_list("FLOWER_BASIC_AUTH")
    given_on_command_line = any(arg.startswith(("--basic-auth", "--auth")) for arg in argv)
    generated = None
    if not basic_auth and not given_on_command_line and not env("FLOWER_AUTH"):
        if env("LUFFY_ENV", "development") != "development":
            raise SystemExit(
                "Flower needs FLOWER_BASIC_AUTH=user:password (or --basic-auth) outside "
                "development: its pages show every task's arguments and can revoke tasks."
            )
        import secrets

        generated = ("flower", secrets.token_urlsafe(12))
        basic_auth = [":".join(generated)]
    return {
        # Listen on this machine only; a reverse proxy with TLS faces the world.
        "address": env("FLOWER_ADDRESS", "127.0.0.1"),
        "port": env_int("FLOWER_PORT", 5555),
        # Flower keeps task history in memory: capped (the task_results table keeps it all).
        "max_tasks": env_int("FLOWER_MAX_TASKS", 10000),
        # Drop workers that have been offline this many seconds from the list.
        "purge_offline_workers": env_int("FLOWER_PURGE_OFFLINE_WORKERS", 86400),
        "basic_auth": basic_auth,
        "generated_login": generated,
    }


def forwarded_allow_ips():
    """The reverse proxies' addresses (IPs or networks, comma-separated; "*" trusts every
    peer), as gunicorn's forwarded_allow_ips reads them: X-Forwarded-Proto (gunicorn) and
    X-Forwarded-For (luffy/proxy.py) are believed only on connections from these."""
    return env_list("FORWARDED_ALLOW_IPS", "127.0.0.1")


def web_server_settings():
    """gunicorn's bind address and concurrency (read by gunicorn.conf.py)."""
    cpus = os.cpu_count() or 1
    return {
        "bind": env("WEB_BIND", "127.0.0.1:8000"),
        "workers": env_int("WEB_CONCURRENCY", max(2, cpus)),
        "threads": env_int("WEB_THREADS", 8),
        # Recycle a worker after about this many requests (0: never); see gunicorn.conf.py.
        "max_requests": env_int("WEB_MAX_REQUESTS", 100_000),
        # The reverse proxy's address(es): X-Forwarded-Proto is trusted only from there.
        "forwarded_allow_ips": ",".join(forwarded_allow_ips()),
    }
