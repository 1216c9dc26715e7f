"""A Megaplan client for a stored credential, with its tokens kept (encrypted) in the database."""
from __future__ import annotations

import threading

from cachetools import LRUCache
from flask import current_app
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.crypto import decrypt, encrypt
from megaplan_plugin.engines import own_engine
from megaplan_plugin.megaplan import MegaplanClient, Tokens
from megaplan_plugin.megaplan.capture import Capture
from megaplan_plugin.models import Credential, aware


def side_engine():
    """For statements that commit apart from a job's transaction: the token row and durable
    intents (``engines.py`` says why they have a pool of their own)."""
    state = current_app.extensions["megaplan"]
    if state.side_engine is None:
        state.side_engine = own_engine(cabinet.db().engine, size=2, overflow=8, wait=30, pre_ping=True)
    return state.side_engine


TOKEN_LOCK_SECONDS = 30


class DbTokenStore:
    """``TokenStore`` over the credential's row, kept in memory between refreshes.

    Refreshes are single flight across processes (a Redis lock per credential); the write is
    still a compare-and-swap under a row lock, so a newer pair is never overwritten by an
    older one. It uses connections of its own so it never commits a job's half-done session.
    """

    def __init__(self, credential_id: int, key_setting: str, redis):
        self.credential_id = credential_id
        self.key_setting = key_setting
        self.engine = side_engine()
        self.redis = redis
        self._cached: Tokens | None = None

    def refresh_lock(self):
        """Held around a refresh or login of this credential, in every process."""
        return self.redis.lock(f"megaplan:lock:token:{self.credential_id}", timeout=TOKEN_LOCK_SECONDS,
                               blocking_timeout=TOKEN_LOCK_SECONDS)

    def _read(self, conn, for_update: bool = False) -> Tokens | None:
        query = select(
            Credential.access_token_enc, Credential.refresh_token_enc, Credential.token_expires_at,
        ).where(Credential.id == self.credential_id)
        row = conn.execute(query.with_for_update() if for_update else query).one_or_none()
        if row is None or row.access_token_enc is None:
            return None
        return Tokens(decrypt(row.access_token_enc, self.key_setting),
                      decrypt(row.refresh_token_enc, self.key_setting), aware(row.token_expires_at))

    def load(self, fresh: bool = False) -> Tokens | None:
        if self._cached is not None and not fresh:
            return self._cached
        with self.engine.connect() as conn:
            self._cached = self._read(conn)
        return self._cached

    def save(self, new: Tokens, replaced: Tokens | None) -> Tokens:
        with self.engine.begin() as conn:
            current = self._read(conn, for_update=True)
            stored_refresh = current.refresh_token if current else None
            replaced_refresh = replaced.refresh_token if replaced else None
            if current is not None and stored_refresh != replaced_refresh:
                self._cached = current
                return current  # someone rotated first; theirs is the live pair
            conn.execute(Credential.__table__.update().where(
                Credential.id == self.credential_id).values(
                access_token_enc=encrypt(new.access_token, self.key_setting),
                refresh_token_enc=encrypt(new.refresh_token, self.key_setting),
                token_expires_at=new.expires_at))
        self._cached = new
        return new


_local = threading.local()
DEFAULT_TIMEOUT = (3.05, 15)
# Per thread: one client (an HTTP session and its tokens) per credential in use. The least
# recently used go first, so a thousand accounts keep their clients warm instead of the
# whole cache emptying itself when it fills.
MAX_CACHED_CLIENTS = 2048


def client_for(credential: Credential, timeout=DEFAULT_TIMEOUT) -> MegaplanClient:
    """One client per credential and thread, so jobs reuse the HTTP connection to Megaplan.

    A changed login, password or domain makes a new client; ``requests.Session`` is not
    shared between threads.
    """
    app = current_app._get_current_object()
    cache_key = (app, credential.id, credential.base_url, credential.login, credential.password_enc,
                 timeout)
    cache = getattr(_local, "clients", None)
    if cache is None:
        cache = _local.clients = LRUCache(maxsize=MAX_CACHED_CLIENTS)
    client = cache.get(cache_key)
    if client is None:
        key = current_app.config["MEGAPLAN_ENCRYPTION_KEY"]
        client = cache[cache_key] = MegaplanClient(
            credential.base_url, credential.login, decrypt(credential.password_enc, key),
            token_store=DbTokenStore(credential.id, key, current_app.extensions["megaplan"].redis),
            timeout=timeout, allow_http=current_app.config["MEGAPLAN_ALLOW_HTTP"],
            capture=capture())
    return client


def capture() -> Capture | None:
    """The request record ``MEGAPLAN_CAPTURE_FILE`` asks for, if it does."""
    path = current_app.config.get("MEGAPLAN_CAPTURE_FILE")
    return Capture(path) if path else None
