"""How often each recording was played: counted in the web process, written once a second.

Why not an UPDATE per fetch: bench/recordings.py measured the plugin's link at 0.67-0.77x the
PBX store's throughput with an UPDATE and a commit per play, and 0.82-0.88x without them (20
players, 5 MB, embedded mode); a player fetches a recording whole at every play, so the commit
is paid on the hot path of every listen. Here a play is one addition under a lock, and one
transaction a second writes every call's plays at once.

What the reader must hold:
* the journal's «запись прослушана» may lag by up to ``FLUSH_SECONDS``;
* a process that is killed (SIGKILL, power) loses the plays of its last ``FLUSH_SECONDS``; a
  process that stops (atexit, ``close``) writes them first;
* a write that fails (the database is away) keeps the plays for the next flush: nothing is lost
  while the process lives, and nothing is added twice, because what a flush took out of the
  buffer goes back only when its transaction did not commit.
Several web processes each keep their own buffer; the writes add, so they never overwrite.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter

from sqlalchemy import bindparam
from sqlalchemy.exc import SQLAlchemyError

from megaplan_plugin.models import OutboxEntry

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
_outbox = OutboxEntry.__table__
_ADD = (_outbox.update().where(_outbox.c.id == bindparam("row"))
        .values(recording_plays=_outbox.c.recording_plays + bindparam("plays")))


class PlayCounts:
    def __init__(self, interval: float = FLUSH_SECONDS):
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: Counter[int] = Counter()
        self._engine = None
        self._thread: threading.Thread | None = None
        self._pid = None
        self._stop = threading.Event()
        atexit.register(self.close)

    def add(self, engine, outbox_id: int) -> None:
        """One play of the call's recording (its outbox row)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked worker does not inherit the parent's thread
                self._pending, self._thread, self._pid = Counter(), None, os.getpid()
            self._engine = engine
            self._pending[outbox_id] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="megaplan-play-counts", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        """Write what is counted; the number of plays written."""
        with self._lock:
            taken, self._pending, engine = self._pending, Counter(), self._engine
        if not taken:
            return 0
        try:
            with engine.begin() as conn:
                conn.execute(_ADD, [{"row": row, "plays": plays} for row, plays in sorted(taken.items())])
        except SQLAlchemyError as exc:
            with self._lock:
                self._pending.update(taken)
            log.warning("recording plays not written yet (%d kept for the next try): %s",
                        sum(taken.values()), type(exc).__name__)
            return 0
        return sum(taken.values())

    def close(self) -> None:
        """Stop the writer and write what is left (an app torn down, a process stopping)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=5)
        self.flush()
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
