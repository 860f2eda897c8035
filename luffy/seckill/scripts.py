"""The flash sale's Lua scripts (luffy/seckill/lua/*.lua), registered once per Redis client.

redis-py's ``register_script`` runs each by EVALSHA and sends the source again after a Redis
restart. Every script starts with the ticket states of luffy/seckill/keys.py as Lua locals
(``WAITING``, ``RUNNING``, ``BOUGHT``, ``FAILED``), so the values are written in one place.
"""

from pathlib import Path

from luffy.seckill.keys import BOUGHT, FAILED, RUNNING, WAITING

FOLDER = Path(__file__).with_name("lua")
NAMES = (
    "admit",
    "withdraw",
    "read_ticket",
    "update_sale",
    "take_batch",
    "mark_running",
    "finish",
    "finish_drain",
    "fan_out",
    "requeue",
    "refund",
    "add_buyer",
    "fix_stock",
)
STATES = (
    f"local WAITING, RUNNING, BOUGHT, FAILED = '{WAITING}', '{RUNNING}', '{BOUGHT}', '{FAILED}'\n"
)


def source(name):
    """The text of script ``name`` as Redis runs it (the states first)."""
    return STATES + (FOLDER / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """One attribute per script, each a redis-py ``Script``: ``scripts.admit(keys=, args=)``."""

    def __init__(self, redis):
        for name in NAMES:
            setattr(self, name, redis.register_script(source(name)))


def init_app(app):
    app.extensions["luffy_seckill_scripts"] = Scripts(app.extensions["luffy_redis"])


def scripts() -> Scripts:
    """The scripts of the current app's Redis client."""
    from flask import current_app

    return current_app.extensions["luffy_seckill_scripts"]
