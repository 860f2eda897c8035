"""The flash sale's fast path."""

import os
import threading
import weakref


class Tickets:
    """New tickets: 128 random bits as 32 hex digits, like ``uuid4().hex``, from a buffer.

    ``os.urandom`` lets go of the GIL around its system call; once per buy request that is one
    more thread hand-over in a busy web worker. The buffer is filled 256 tickets at a time; a
    forked child starts with an empty buffer and a new lock (``os.register_at_fork``), so two
    processes never hand out the same bytes and a lock held at the fork cannot stall the child.
    """

    BATCH = 256

    def __init__(self):
        self._forget()
        _all_tickets.add(self)

    def _forget(self):
        self._lock = threading.Lock()
        self._random = b""
        self._next = 0

    def next(self):
        with self._lock:
            if self._next >= len(self._random):
                self._random, self._next = os.urandom(16 * self.BATCH), 0
            start = self._next
            self._next = start + 16
            return self._random[start : start + 16].hex()


_all_tickets = weakref.WeakSet()


def _forget_tickets_after_fork():
    for source in list(_all_tickets):
        source._forget()


os.register_at_fork(after_in_child=_forget_tickets_after_fork)


def new_ticket():
    return _tickets.next()


_tickets = Tickets()
