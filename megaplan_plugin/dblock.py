"""One process at a time across a database: for migrations and start-up work that several
processes (web, workers, cron) may begin at the same moment.

PostgreSQL: a session-level advisory lock keyed by ``name``. SQLite: ``flock`` on a lock
file beside the database file. Anything else (an in-memory database, no ``flock``): no lock,
since only one process can reach such a database anyway, or the caller copes with a race.
"""
from __future__ import annotations

import contextlib
import zlib

from sqlalchemy import text

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


@contextlib.contextmanager
def exclusive(engine, name: str):
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(name.encode())
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        yield
        return
    with open(f"{database}.{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
