"""The Redis keys beat writes, named once: the lock, its last tick, and its plan of next runs."""

# Held by the one beat that schedules (``luffy.beat.lock``): "hostname:pid:token".
LOCK_KEY = "luffy:beat:lock"
# Unix time of the lock holder's last tick.
LAST_TICK_KEY = "luffy:beat:last_tick"
# The next runs the lock holder plans, as JSON (``luffy.beat.services.next_due`` reads it).
NEXT_DUE_KEY = "luffy:beat:next_due"
# How many of them it publishes.
NEXT_DUE_PUBLISHED = 20
# The schedule version the lock holder has applied (edits up to it are in effect).
APPLIED_VERSION_KEY = "luffy:beat:applied_version"
