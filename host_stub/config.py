"""Configuration from the environment with the embedded defaults of CONTRACT §6."""
from __future__ import annotations

import os
import secrets
from pathlib import Path



def load_config(app) -> None:
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    app.config.update(
        SECRET_KEY=env.get("SECRET_KEY") or _instance_secret(instance / "secret_key",
                                                             lambda: secrets.token_hex(32)),
        # The stub is a demo and test host: plugins bring their tables up when it starts.
        MEGAPLAN_AUTO_MIGRATE=True,
        SQLALCHEMY_DATABASE_URI=_database_url(env.get("DATABASE_URL"), instance),
        # No pre-ping: it costs a round trip on every checkout of the hooks' hot path;
        # recycling connections covers servers that drop idle ones.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_recycle": 300},
        # The simulated PBX's own store (its employees, numbers and call history): not the
        # cabinet's database, as a real PBX's history does not go down with the cabinet.
        PBX_DATABASE_URL=_database_url(env.get("PBX_DATABASE_URL")
                                       or f"sqlite:///{instance / 'pbx.sqlite3'}", instance),
        # The PBX's recordings (pbx_recordings.py): where the files are, how long the pushed
        # public `link` works and how long the PBX keeps them for its authenticated download.
        PBX_RECORDINGS_DIR=env.get("PBX_RECORDINGS_DIR") or str(instance / "pbx-recordings"),
        # The cabinet's own address, for links made outside a request (a job's click-to-call).
        CABINET_PUBLIC_URL=env.get("CABINET_PUBLIC_URL") or "http://127.0.0.1:5000",
        CABINET_PBX_LINK_DAYS=int(env.get("CABINET_PBX_LINK_DAYS", "7")),
        CABINET_PBX_RECORDING_DAYS=int(env.get("CABINET_PBX_RECORDING_DAYS", "90")),
        REDIS_URL=env.get("REDIS_URL") or None,
        CABINET_ROUTE_TIMEOUT_MS=int(env.get("CABINET_ROUTE_TIMEOUT_MS", "1000")),
        CABINET_TIME_ZONE=env.get("CABINET_TIME_ZONE", "Europe/Moscow"),
        # The sandbox is the demo's Megaplan; a port of 0 or unset keeps it off.
        MEGAPLAN_SANDBOX_PORT=int(env.get("MEGAPLAN_SANDBOX_PORT", "0") or 0),
        # None keeps werkzeug's default (scrypt); tests set a cheap "pbkdf2:sha256:1000".
        CABINET_PASSWORD_HASH_METHOD=env.get("CABINET_PASSWORD_HASH_METHOD") or None,
        # Login attempts: failures per login and per client address within a fixed window.
        CABINET_LOGIN_MAX_PER_LOGIN=int(env.get("CABINET_LOGIN_MAX_PER_LOGIN", "10")),
        CABINET_LOGIN_MAX_PER_ADDRESS=int(env.get("CABINET_LOGIN_MAX_PER_ADDRESS", "30")),
        CABINET_LOGIN_WINDOW_SECONDS=int(env.get("CABINET_LOGIN_WINDOW_SECONDS", "900")),
        # How many reverse proxies in front set X-Forwarded-For/-Proto (0: trust none).
        CABINET_TRUST_PROXY=proxy_count(env.get("CABINET_TRUST_PROXY")),
        # Bodies above this are refused with 413 before any view reads them.
        MAX_CONTENT_LENGTH=int(env.get("CABINET_MAX_CONTENT_LENGTH", str(1024 * 1024))),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )


def proxy_count(value: str | None) -> int:
    value = (value or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return 0
    if value in ("true", "yes", "on"):
        return 1
    return int(value)


def _database_url(url: str | None, instance: Path) -> str:
    if not url:
        return f"sqlite:///{instance / 'cabinet.sqlite3'}"
    # Plain postgresql:// URLs would pick psycopg2; we ship psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _instance_secret(path: Path, make) -> str:
    """Read a secret generated on first run; created with 0600 so other users cannot read it.

    Several processes may start on a fresh instance folder at once: each writes its candidate
    to a private file and links it into place, which succeeds for exactly one of them and
    never shows a half-written file; the others read the winner's secret.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make()
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(candidate, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        candidate.unlink(missing_ok=True)
    return value
