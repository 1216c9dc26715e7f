"""Secrets at rest: Megaplan passwords and tokens are Fernet-encrypted with the app's key.

``MEGAPLAN_ENCRYPTION_KEY`` may list several keys separated by commas: the first encrypts, all
decrypt, so a key can be rotated without losing the stored credentials.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key (the key was changed)."""


def _fernet(key_setting: str | None = None) -> MultiFernet:
    keys = key_setting or current_app.config["MEGAPLAN_ENCRYPTION_KEY"]
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(value: str | None, key_setting: str | None = None) -> str | None:
    if value is None:
        return None
    return _fernet(key_setting).encrypt(value.encode()).decode()


def decrypt(token: str | None, key_setting: str | None = None) -> str | None:
    if token is None:
        return None
    try:
        return _fernet(key_setting).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("stored secret cannot be decrypted with MEGAPLAN_ENCRYPTION_KEY") from None


def new_api_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_secret_matches(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_api_secret(secret), stored_hash)
