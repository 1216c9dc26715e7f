"""Single flight: one token refresh per credential, one run of each periodic job.

The locks live in Redis, which every worker process and thread shares (the in-process
Redis of the embedded mode is shared by its threads), so they hold across processes.
"""
from __future__ import annotations

import contextlib

TOKEN_LOCK_SECONDS = 30


def token_lock(conn, credential_id: int):
    """Held around a token refresh or login of one credential, in every process."""
    return conn.lock(f"megaplan:lock:token:{credential_id}", timeout=TOKEN_LOCK_SECONDS,
                     blocking_timeout=TOKEN_LOCK_SECONDS)


@contextlib.contextmanager
def once(conn, name: str, seconds: int):
    """Run a periodic job's body only if no other run of it is in progress."""
    lock = conn.lock(f"megaplan:lock:periodic:{name}", timeout=seconds, blocking=False)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(Exception):
                lock.release()
