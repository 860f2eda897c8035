"""Beat's plan: the enabled entries, indexed by id and by schedule row, and a heap of their
next runs, so a tick looks at the earliest run only (never a scan of every row)."""

import heapq
import itertools
from collections import defaultdict

from luffy.beat.entries import BadRow, Entry, fingerprint
from luffy.models.base import as_utc


class Plan:
    def __init__(self, app, clock):
        self.app = app
        self.clock = clock
        self.entries = {}  # id -> Entry
        self.by_ref = defaultdict(set)  # (schedule table, id) -> entry ids
        self.heap = []  # (due, seq, entry); stale items are skipped when they surface
        self._seq = itertools.count()
        self.cache = {}  # schedule key -> Celery schedule, shared by rows with equal schedules

    def __len__(self):
        return len(self.entries)

    def put(self, spec, now, pending_runs=0):
        """Add or refresh the entry of an enabled row; returns it (raises BadRow).

        An unchanged row keeps its entry, its run times and its place in the heap; the later
        of the database's and memory's last run wins, so a re-read never sends a run twice.
        """
        old = self.entries.get(spec.id)
        try:
            print_ = fingerprint(spec)
            old_due = old.due if old is not None else None
            if old is not None and old.fingerprint == print_:
                entry = old
            else:
                entry = Entry.build(
                    spec, app=self.app, nowfun=self.clock, cache=self.cache, print_=print_
                )
                if old is not None:
                    entry.last_run_at = old.last_run_at
                    entry.total_run_count = old.total_run_count
            db_last = as_utc(spec.last_run_at)
            moved = db_last is not None and (
                entry.last_run_at is None or db_last > entry.last_run_at
            )
            if moved:
                entry.last_run_at = db_last
            entry.total_run_count = max(
                entry.total_run_count, (spec.total_run_count or 0) + pending_runs
            )
            if entry is not old or moved:
                entry.refresh_due(now)
        except BadRow:
            self.remove(spec.id)
            raise
        if entry is not old:
            self.remove(spec.id)
            self.entries[entry.id] = entry
            if entry.ref is not None:
                self.by_ref[entry.ref].add(entry.id)
            self.push(entry)
        elif moved and entry.due != old_due:
            self.push(entry)  # the old heap item no longer matches entry.due: it is skipped
        return entry

    def remove(self, entry_id):
        entry = self.entries.pop(entry_id, None)
        if entry is not None and entry.ref is not None:
            ids = self.by_ref.get(entry.ref)
            if ids is not None:
                ids.discard(entry_id)
                if not ids:
                    del self.by_ref[entry.ref]
        return entry

    def push(self, entry):
        if entry.due is not None:
            heapq.heappush(self.heap, (entry.due, next(self._seq), entry))
        if len(self.heap) > 2 * len(self.entries) + 1000:
            self.compact()

    def current(self, item):
        due, _, entry = item
        return self.entries.get(entry.id) is entry and entry.due == due

    def compact(self):
        self.heap = [item for item in self.heap if self.current(item)]
        heapq.heapify(self.heap)

    def pop_due(self, now):
        """The earliest entry due at ``now``, taken off the heap; None when none is due."""
        while self.heap and self.heap[0][0] <= now:
            item = heapq.heappop(self.heap)
            if self.current(item):
                return item[2]
        return None

    def first_due(self):
        """The earliest planned run (stale items may make it early, never late)."""
        return self.heap[0][0] if self.heap else None

    def upcoming(self, limit):
        """The next ``limit`` current entries in due order, without touching the heap.

        Walks the heap as a tree from its root (a child is never earlier than its parent),
        so the cost grows with ``limit``, not with the number of rows.
        """
        found, frontier, heap = [], [], self.heap
        if heap:
            frontier.append((heap[0][0], heap[0][1], 0))
        while frontier and len(found) < limit:
            _, _, index = heapq.heappop(frontier)
            if self.current(heap[index]):
                found.append(heap[index][2])
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child][0], heap[child][1], child))
        return found
