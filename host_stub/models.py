"""The cabinet's own tables: accounts and their enabled plugins.

The PBX's employees, numbers and call history are the PBX's, in its own store (pbx_store.py).
"""
from __future__ import annotations

import secrets

from flask import current_app, has_app_context
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from .db import db


class Account(db.Model):
    __tablename__ = "cabinet_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    # Stored in the session at login; logout bumps it, which ends every session issued before.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    def set_password(self, password: str) -> None:
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


def _hash_method() -> str | None:
    return current_app.config.get("CABINET_PASSWORD_HASH_METHOD") if has_app_context() else None


def hash_password(password: str) -> str:
    """A hash with ``CABINET_PASSWORD_HASH_METHOD`` (werkzeug's default when unset)."""
    method = _hash_method()
    return generate_password_hash(password, method) if method else generate_password_hash(password)


_dummy_hashes: dict[str | None, str] = {}


def verify_password(account: Account | None, password: str) -> bool:
    """Check a password; for an unknown login against a dummy hash of the same method.

    Either way one hash is computed, so the answer's timing does not tell which logins exist.
    """
    if account is not None:
        return account.check_password(password)
    method = _hash_method()
    dummy = _dummy_hashes.get(method)
    if dummy is None:
        dummy = _dummy_hashes.setdefault(method, hash_password(secrets.token_hex(16)))
    check_password_hash(dummy, password)
    return False


class EnabledPlugin(db.Model):
    __tablename__ = "cabinet_enabled_plugin"
    __table_args__ = (UniqueConstraint("account_id", "plugin_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("cabinet_account.id"))
    plugin_key: Mapped[str] = mapped_column(String(64))
