"""Single flight: one worker at a time per PBX call and per credential's token refresh.

The locks live in Redis, which every worker process and thread shares (the in-process
Redis of the embedded mode is shared by its threads), so they hold across processes.
"""
from __future__ import annotations

import contextlib

from flask import current_app

from megaplan_plugin.delivery.queues import connection

# Long enough for the slowest Megaplan round trips a holder makes (timeouts are 15 s);
# a holder that dies frees the lock when it expires (MEGAPLAN_CALL_LOCK_SECONDS overrides).
CALL_LOCK_SECONDS = 60
TOKEN_LOCK_SECONDS = 30


def _call_lock_seconds() -> int:
    return int(current_app.config.get("MEGAPLAN_CALL_LOCK_SECONDS") or CALL_LOCK_SECONDS)


def call_lock(account_id: str, call_id: str):
    """Held while a job finds or creates the one CallInfo of a PBX call."""
    seconds = _call_lock_seconds()
    return connection().lock(f"megaplan:lock:call:{account_id}:{call_id}",
                             timeout=seconds, blocking_timeout=seconds)


def client_lock(account_id: str, phone: str):
    """Held while a job finds or creates the Megaplan client of a number."""
    seconds = _call_lock_seconds()
    return connection().lock(f"megaplan:lock:client:{account_id}:{phone}",
                             timeout=seconds, blocking_timeout=seconds)


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
