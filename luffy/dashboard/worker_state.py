"""Workers keep revoked task ids in ``WORKER_STATE_DB`` (else a restart forgets them): make sure its
folder exists.

A worker host has no ``instance/`` folder of its own when the database is a server, and a
state file in a missing folder would stop the worker from starting.
"""

from pathlib import Path

from celery import signals


@signals.worker_init.connect(weak=False)
def create_state_folder(sender=None, **kwargs):
    state_db = getattr(sender, "statedb", None)
    if state_db:
        Path(state_db).parent.mkdir(parents=True, exist_ok=True)
