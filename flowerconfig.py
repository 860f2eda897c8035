"""Flower's settings (``celery -A tasks flower`` reads this file from the working directory).

Environment variables FLOWER_<OPTION> (e.g. FLOWER_BASIC_AUTH=user:password, FLOWER_PORT)
and command-line options still apply; see README.md, "Monitoring".
"""

import os

# Listen on this machine only; a reverse proxy with TLS and authentication faces the world.
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
# Flower keeps task history in memory (PITFALLS 21): cap it. The history that matters is
# the task_results table, shown in the admin.
max_tasks = int(os.environ.get("FLOWER_MAX_TASKS", "10000"))
# Drop workers that have been offline for a day from the list.
purge_offline_workers = int(os.environ.get("FLOWER_PURGE_OFFLINE_WORKERS", "86400"))
