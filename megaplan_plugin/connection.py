"""A Megaplan client for a stored credential, with its tokens kept (encrypted) in the database."""
from __future__ import annotations

import threading
from datetime import timezone

from flask import current_app
from sqlalchemy import select

from .crypto import decrypt, encrypt
from .megaplan import MegaplanClient, Tokens
from .models import Credential


def _db():
    return current_app.extensions["cabinet"].db


class DbTokenStore:
    """``TokenStore`` over the credential's row: compare-and-swap under a row lock.

    Refresh tokens rotate, so two workers refreshing at once must not overwrite the newer pair
    with an older one: the write happens only if the row still holds the pair being replaced.
    It uses a connection of its own so that it never commits a job's half-done session.
    """

    def __init__(self, credential_id: int, key_setting: str):
        self.credential_id = credential_id
        self.key_setting = key_setting
        self.engine = _db().engine

    def _read(self, conn) -> Tokens | None:
        row = conn.execute(select(
            Credential.access_token_enc, Credential.refresh_token_enc, Credential.token_expires_at,
        ).where(Credential.id == self.credential_id).with_for_update()).one_or_none()
        if row is None or row.access_token_enc is None:
            return None
        expires_at = row.token_expires_at
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)  # SQLite drops the zone
        return Tokens(decrypt(row.access_token_enc, self.key_setting),
                      decrypt(row.refresh_token_enc, self.key_setting), expires_at)

    def load(self) -> Tokens | None:
        with self.engine.connect() as conn:
            return self._read(conn)

    def save(self, new: Tokens, replaced: Tokens | None) -> Tokens:
        with self.engine.begin() as conn:
            current = self._read(conn)
            stored_refresh = current.refresh_token if current else None
            replaced_refresh = replaced.refresh_token if replaced else None
            if current is not None and stored_refresh != replaced_refresh:
                return current  # someone rotated first; theirs is the live pair
            conn.execute(Credential.__table__.update().where(
                Credential.id == self.credential_id).values(
                access_token_enc=encrypt(new.access_token, self.key_setting),
                refresh_token_enc=encrypt(new.refresh_token, self.key_setting),
                token_expires_at=new.expires_at))
            return new


_local = threading.local()
DEFAULT_TIMEOUT = (3.05, 15)
MAX_CACHED_CLIENTS = 64


def client_for(credential: Credential, timeout=DEFAULT_TIMEOUT) -> MegaplanClient:
    """One client per credential and thread, so jobs reuse the HTTP connection to Megaplan.

    A changed login, password or domain makes a new client; ``requests.Session`` is not
    shared between threads.
    """
    app = current_app._get_current_object()
    cache_key = (app, credential.id, credential.base_url, credential.login, credential.password_enc,
                 timeout)
    cache = getattr(_local, "clients", None)
    if cache is None or len(cache) > MAX_CACHED_CLIENTS:
        cache = _local.clients = {}
    client = cache.get(cache_key)
    if client is None:
        key = current_app.config["MEGAPLAN_ENCRYPTION_KEY"]
        client = cache[cache_key] = MegaplanClient(
            credential.base_url, credential.login, decrypt(credential.password_enc, key),
            token_store=DbTokenStore(credential.id, key), timeout=timeout)
    return client
