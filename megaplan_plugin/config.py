"""Every setting the plugin reads, its default, and the one start-up check.

The plugin runs in any cabinet, not only the stub: it takes its settings from the host's
``app.config`` first, then the environment, then the defaults below, and generates its own
encryption key into the host's instance folder when none is given.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask

TRUE = ("1", "true", "yes", "on")
KEY_FILE = "megaplan_encryption_key"


class ConfigError(RuntimeError):
    """A production setting is missing; the message says which, in Russian and English."""


def _flag(app: Flask, name: str, default: bool) -> bool:
    if name in app.config:
        return bool(app.config[name])
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE


def init_config(app: Flask) -> None:
    app.config.setdefault("REDIS_URL", os.environ.get("REDIS_URL") or None)
    embedded = not app.config["REDIS_URL"]
    app.config["MEGAPLAN_ALLOW_HTTP"] = _flag(app, "MEGAPLAN_ALLOW_HTTP", False)
    # The cabinet's address as Megaplan's player reaches it: recordLinks point here.
    app.config.setdefault("MEGAPLAN_PUBLIC_URL", os.environ.get("MEGAPLAN_PUBLIC_URL")
                          or app.config.get("CABINET_PUBLIC_URL") or "http://127.0.0.1:5000")
    # Every Megaplan request as a JSON line, to check against Megaplan's schema (capture.py).
    app.config.setdefault("MEGAPLAN_CAPTURE_FILE", os.environ.get("MEGAPLAN_CAPTURE_FILE") or None)
    app.config["MEGAPLAN_EMBEDDED_WORKER"] = _flag(app, "MEGAPLAN_EMBEDDED_WORKER", True)
    # The embedded mode is one command on a fresh machine: it brings its tables up itself.
    # In production the operator runs `flask megaplan db upgrade` with each release.
    app.config["MEGAPLAN_AUTO_MIGRATE"] = _flag(app, "MEGAPLAN_AUTO_MIGRATE", embedded)
    app.config["MEGAPLAN_ENCRYPTION_KEY"] = (app.config.get("MEGAPLAN_ENCRYPTION_KEY")
                                             or os.environ.get("MEGAPLAN_ENCRYPTION_KEY")
                                             or _instance_key(Path(app.instance_path)))


def _instance_key(instance: Path) -> str:
    """The Fernet key generated on first start, kept 0600 in the instance folder.

    Several processes may start on a fresh folder at once: each writes its candidate to a
    private file and links it into place; exactly one wins and the others read its key.
    """
    path = instance / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        instance.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(
            "Не задан ключ шифрования MEGAPLAN_ENCRYPTION_KEY, и папка экземпляра "
            f"{instance} недоступна для записи, чтобы создать его. / MEGAPLAN_ENCRYPTION_KEY is "
            f"not set and the instance folder {instance} is not writable to generate one "
            f"({exc.strerror}).") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode())
            fh.flush()
            os.fsync(fh.fileno())
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink(missing_ok=True)
    return path.read_text().strip()
