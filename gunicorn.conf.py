"""gunicorn settings for Luffy: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from config import web_server_settings

_settings = web_server_settings()

bind = _settings["bind"]
# One process per core (at least two, so a slow request never stalls the site); set
# WEB_CONCURRENCY to override. Each process keeps its own banner copy (see luffy/home/banners.py).
workers = _settings["workers"]
# gthread: requests that wait on Redis, the database or the broker overlap inside a process
# without the memory cost of more processes.
worker_class = "gthread"
threads = _settings["threads"]
# Without SO_REUSEPORT one gthread worker accepts nearly every keep-alive connection and
# throughput swings 2-3x between runs (PITFALLS 10); the kernel then balances connections.
reuse_port = True
# A request that takes longer than this is a bug; the worker is replaced rather than hung.
timeout = 30
# Ctrl-C / SIGTERM lets in-flight requests finish for this long before workers are killed.
graceful_timeout = 20
keepalive = 5
# Access log on stdout, one line per request; errors on stderr.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Workers import the app themselves: nothing (Redis, database or broker connections) is
# opened before fork and then shared between processes.
preload_app = False
