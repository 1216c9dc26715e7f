"""Values shown once (the telephony app's new secret): kept server-side, never in a cookie.

The value waits in Redis, encrypted with the plugin's key, for a few minutes; the browser's
session holds only a random ticket. Reading it deletes it.
"""
from __future__ import annotations

import secrets

from flask import current_app
from redis.exceptions import RedisError

from megaplan_plugin.crypto import decrypt, encrypt

KEEP_SECONDS = 300


def _key(account_id: str, ticket: str) -> str:
    return f"megaplan:once:{account_id}:{ticket}"


def keep(account_id: str, value: str) -> str:
    ticket = secrets.token_urlsafe(16)
    current_app.extensions["megaplan"].redis.set(_key(account_id, ticket), encrypt(value),
                                                  ex=KEEP_SECONDS)
    return ticket


def take(account_id: str, ticket: str | None) -> str | None:
    if not ticket:
        return None
    try:
        stored = current_app.extensions["megaplan"].redis.getdel(_key(account_id, ticket))
    except RedisError:
        return None
    return decrypt(stored.decode() if isinstance(stored, bytes) else stored) if stored else None
