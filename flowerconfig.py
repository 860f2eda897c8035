"""Flower's settings (``celery -A tasks flower`` reads this file from the working directory).

Every value comes from config.py (``flower_settings``): FLOWER_ADDRESS, FLOWER_PORT,
FLOWER_MAX_TASKS, FLOWER_PURGE_OFFLINE_WORKERS and FLOWER_BASIC_AUTH. Basic auth is always
on: without FLOWER_BASIC_AUTH (or ``--basic-auth``), development gets a generated password,
printed once below, and production refuses to start. Command-line options still win.
Flower's ``/metrics`` and ``/healthcheck`` answer without auth: docs/security.md shows the
nginx lines that close them.
"""

import sys

from config import flower_settings

_settings = flower_settings(sys.argv[1:])

address = _settings["address"]
port = _settings["port"]
max_tasks = _settings["max_tasks"]
purge_offline_workers = _settings["purge_offline_workers"]
if _settings["basic_auth"]:
    basic_auth = _settings["basic_auth"]
if _settings["generated_login"]:
    _user, _password = _settings["generated_login"]
    print(
        f"Flower login (generated for this run; set FLOWER_BASIC_AUTH to choose one): "
        f"user {_user}, password {_password}",
        file=sys.stderr,
        flush=True,
    )
