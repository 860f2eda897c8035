"""The one-beat-at-a-time lock (PITFALLS 16), modelled on redbeat's: a Redis key with a TTL
holding ``hostname:pid:token``, renewed by the holder on every tick and taken over by a
waiting beat once the holder stops renewing it."""

import os
import socket
import time
import uuid

LOCK_KEY = "luffy:beat:lock"
LAST_TICK_KEY = "luffy:beat:last_tick"

# Take the lock if free, or keep it if ours; answer 1 when we hold it afterwards.
ACQUIRE = """
local holder = redis.call('get', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class BeatLock:
    """``acquire()`` both takes and renews; ``held`` says whether the last renewal worked."""

    def __init__(self, redis, timeout):
        self.redis = redis
        self.timeout = float(timeout)
        self.value = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self.renewed_at = 0.0  # monotonic time of the last successful renewal
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)

    def acquire(self):
        """Take or renew the lock; False when another beat holds it (or Redis is down)."""
        started = time.monotonic()
        ok = bool(self._acquire(keys=[LOCK_KEY], args=[self.value, int(self.timeout * 1000)]))
        self.held = ok
        if ok:
            self.renewed_at = started
        return ok

    def still_valid(self):
        """Held, and renewed recently enough that nobody else can have taken it since."""
        return self.held and time.monotonic() - self.renewed_at < self.timeout * 0.9

    def release(self):
        if self.held:
            self._release(keys=[LOCK_KEY], args=[self.value])
        self.held = False

    def holder(self):
        value = self.redis.get(LOCK_KEY)
        return value.decode() if value else None

    def note_tick(self):
        self.redis.set(LAST_TICK_KEY, f"{time.time():.3f}")
