"""Configuration from the environment with the embedded defaults of CONTRACT §6."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def load_config(app) -> None:
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    app.config.update(
        SECRET_KEY=env.get("SECRET_KEY") or _instance_secret(instance / "secret_key",
                                                             lambda: secrets.token_hex(32)),
        MEGAPLAN_ENCRYPTION_KEY=env.get("MEGAPLAN_ENCRYPTION_KEY") or _instance_secret(
            instance / "megaplan_encryption_key", lambda: Fernet.generate_key().decode()),
        SQLALCHEMY_DATABASE_URI=_database_url(env.get("DATABASE_URL"), instance),
        # No pre-ping: it costs a round trip on every checkout of the hooks' hot path;
        # recycling connections covers servers that drop idle ones.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_recycle": 300},
        REDIS_URL=env.get("REDIS_URL") or None,
        MEGAPLAN_ALLOW_HTTP=env.get("MEGAPLAN_ALLOW_HTTP", "") in ("1", "true", "yes"),
        CABINET_ROUTE_TIMEOUT_MS=int(env.get("CABINET_ROUTE_TIMEOUT_MS", "1000")),
        # The sandbox is the demo's Megaplan; a port of 0 or unset keeps it off.
        MEGAPLAN_SANDBOX_PORT=int(env.get("MEGAPLAN_SANDBOX_PORT", "0") or 0),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )


def _database_url(url: str | None, instance: Path) -> str:
    if not url:
        return f"sqlite:///{instance / 'cabinet.sqlite3'}"
    # Plain postgresql:// URLs would pick psycopg2; we ship psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _instance_secret(path: Path, make) -> str:
    """Read a secret generated on first run; created with 0600 so other users cannot read it."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value
