"""The one-beat-at-a-time lock, modelled on redbeat's: redis-py's ``Lock`` on
``luffy:beat:lock`` holding ``hostname:pid:token``, renewed by the holder on every tick and
taken by a waiting beat once the holder stops renewing it. Two beats would send every task
twice; the lock makes the second one wait."""

import contextlib
import os
import socket
import time
import uuid

from redis.exceptions import LockError

from luffy.beat.keys import LAST_TICK_KEY, LOCK_KEY


class BeatLock:
    """``acquire()`` both takes and renews; ``held`` says whether the last renewal worked."""

    def __init__(self, redis, timeout):
        self.redis = redis
        self.timeout = float(timeout)
        self.value = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self.renewed_at = 0.0  # monotonic time of the last successful renewal
        # thread_local=False: the token is this process's, whichever thread renews it.
        self._lock = redis.lock(LOCK_KEY, timeout=self.timeout, thread_local=False)

    def acquire(self):
        """Take or renew the lock; False when another beat holds it."""
        started = time.monotonic()
        if self.held:
            try:
                self._lock.reacquire()  # resets the TTL only while the token is still ours
                ok = True
            except LockError:
                ok = self._lock.acquire(blocking=False, token=self.value)
        else:
            ok = self._lock.acquire(blocking=False, token=self.value)
        self.held = bool(ok)
        if ok:
            self.renewed_at = started
        return self.held

    def still_valid(self):
        """Held, and renewed recently enough that nobody else can have taken it since."""
        return self.held and time.monotonic() - self.renewed_at < self.timeout * 0.9

    def release(self):
        if self.held:
            # Expired or taken over: nothing of ours to release.
            with contextlib.suppress(LockError):
                self._lock.release()
        self.held = False

    def holder(self):
        value = self.redis.get(LOCK_KEY)
        return value.decode() if value else None

    def note_tick(self):
        self.redis.set(LAST_TICK_KEY, f"{time.time():.3f}")
