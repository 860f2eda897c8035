"""gunicorn settings for Luffy: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The same file serves development (``make run``) and production (``LUFFY_ENV=production``);
what differs is read from the environment in config.py. ``kill -HUP <master pid>`` reloads
gracefully: new workers start with the new code and settings, old ones finish their requests.
"""

import os

from config import config_for_environment, web_server_settings

_settings = web_server_settings()
# Built here, in the master, so that LUFFY_ENV=production without SECRET_KEY stops gunicorn at
# once with a clear message instead of every worker failing to boot in a loop.
_app_config = config_for_environment()()

bind = _settings["bind"]
# One process per core (at least two, so one slow request never stalls the site); set
# WEB_CONCURRENCY to override. gunicorn's "2 x cores + 1" rule is for sync workers: here the
# threads below already overlap the waiting, and every extra process costs its own app,
# connection pools and banner copy (see luffy/home/banners.py).
workers = _settings["workers"]
# gthread: requests that wait on Redis, the database or the broker overlap inside a process
# without the memory cost of more processes; no monkey-patching (gevent/eventlet) that
# psycopg, redis-py and kombu would each have to tolerate.
worker_class = "gthread"
threads = _settings["threads"]
# Without SO_REUSEPORT one gthread worker accepts nearly every keep-alive connection and
# throughput swings 2-3x between runs (measured here); the kernel then balances connections.
reuse_port = True
# A request that takes longer than this is a bug (every outside call in Luffy has its own,
# shorter timeout); the stuck worker is killed and replaced rather than left hanging.
timeout = 30
# On SIGTERM (systemd stop, Ctrl-C) or HUP, in-flight requests get this long to finish.
graceful_timeout = 20
# Behind a load balancer that reuses connections; shorter than its idle timeout (usually 60 s).
keepalive = 5
# Recycle a worker after WEB_MAX_REQUESTS requests plus up to half that at random, so any
# slow memory growth in a library (Celery's result handling has grown a web worker by
# about 0.3 KB a call) stays bounded. High on purpose: a flash sale
# serves thousands of requests a second, and a low limit (gunicorn examples use 1,000-10,000)
# would restart every worker every few seconds, all of them within one boot time of each other.
max_requests = _settings["max_requests"]
max_requests_jitter = max_requests // 2
# The workers' heartbeat file on tmpfs: a slow or full disk under /tmp never makes the
# master think a healthy worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# X-Forwarded-Proto/For are believed only from these addresses (the reverse proxy), so a
# secure cookie is set over HTTPS and a client cannot pretend to be HTTPS itself.
forwarded_allow_ips = _settings["forwarded_allow_ips"]
# Access log on stdout, one line per request; errors on stderr. With LOG_JSON (production's
# default) both become JSON lines on stdout, in the same shape as the application's logs.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
if _app_config.LOG_JSON:
    from luffy.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig(_app_config.LOG_LEVEL)
# gunicorn's control socket has one default path per user, so a second gunicorn on the host
# (a test run, a benchmark) would take it over; signals (HUP, TERM, TTIN/TTOU) do the job.
control_socket_disable = True
# Workers import the app themselves: nothing (Redis, database or broker connections) is
# opened before fork and then shared between processes, and HUP picks up new code.
preload_app = False
