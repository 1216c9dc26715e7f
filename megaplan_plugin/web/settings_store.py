"""Credentials, settings and the Megaplan employee cache of an account."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select

from megaplan_plugin import cabinet
from megaplan_plugin.crypto import encrypt, hash_api_secret, new_api_secret
from megaplan_plugin.megaplan import (
    InvalidDomain,
    MegaplanAuthError,
    MegaplanClient,
    MegaplanError,
    MegaplanTransientError,
    MemoryTokenStore,
    normalize_domain,
)
from megaplan_plugin.megaplan.domain import check_domain_addresses
from megaplan_plugin.megaplan.errors import (
    MegaplanDestinationRefused,
    MegaplanRedirectError,
    NotMegaplanError,
)
from megaplan_plugin.calls.connection import capture
from megaplan_plugin.calls.employees import fetch_directory, person_name, store_directory
from megaplan_plugin.models import Credential, MegaplanEmployee, Settings

log = logging.getLogger(__name__)


def settings_for(account_id: str) -> Settings:
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    if settings is None:
        settings = Settings(account_id=account_id, api_key=secrets.token_hex(16),
                            virtual_numbers=[], communication_types=["in", "out", "missed"])
        db.session.add(settings)
        db.session.commit()
    return settings


def credentials_for(account_id: str) -> list[Credential]:
    return list(cabinet.db().session.execute(select(Credential).where(
        Credential.account_id == account_id).order_by(Credential.title)).scalars())


def credential_for(account_id: str, credential_id: int) -> Credential | None:
    """A credential of this account only; another account's id reads as missing."""
    credential = cabinet.db().session.get(Credential, credential_id)
    return credential if credential is not None and credential.account_id == account_id else None


@dataclass
class CheckResult:
    credential: Credential | None = None
    field: str | None = None
    error: str | None = None


def check_and_store_credential(account_id: str, *, title: str, login: str, password: str | None,
                               domain: str, existing: Credential | None = None) -> CheckResult:
    """Log in to Megaplan with what the admin typed; store it only when Megaplan said yes."""
    db = cabinet.db()
    title, login = title.strip(), login.strip()
    duplicate = db.session.execute(select(Credential.id).where(
        Credential.account_id == account_id, Credential.title == title)).scalar_one_or_none()
    if duplicate is not None and (existing is None or duplicate != existing.id):
        return CheckResult(field="title", error="Учетные данные с таким названием уже есть")
    allow_http = current_app.config["MEGAPLAN_ALLOW_HTTP"]
    try:
        base_url = normalize_domain(domain, allow_http=allow_http)
        check_domain_addresses(base_url, allow_http)
    except InvalidDomain as exc:
        return CheckResult(field="domain", error=str(exc))
    if password is None and existing is not None:
        from megaplan_plugin.crypto import decrypt
        password = decrypt(existing.password_enc)
    store = MemoryTokenStore()
    client = MegaplanClient(base_url, login, password, token_store=store, allow_http=allow_http,
                            capture=capture())
    try:
        me = client.current_user()
        directory = fetch_directory(client)
    except MegaplanAuthError:
        return CheckResult(field="password", error="Неверный логин или пароль Мегаплан")
    except (MegaplanDestinationRefused, MegaplanRedirectError) as exc:
        return CheckResult(field="domain", error=exc.message)
    except NotMegaplanError as exc:
        return CheckResult(field="domain", error=(
            f"По адресу {base_url} отвечает не Мегаплан (ответ {exc.status}). Проверьте домен."))
    except MegaplanTransientError:
        return CheckResult(field="domain", error=(
            f"Сервер {base_url} не отвечает. Проверьте домен или повторите позже."))
    except MegaplanError as exc:
        log.warning("megaplan credential check for %s failed: %s", base_url, exc.status)
        if exc.status == 403:
            return CheckResult(field="login", error=(
                "У этого пользователя нет прав на API Мегаплана: войдите администратором "
                "или выдайте права в Мегаплане."))
        return CheckResult(field="domain", error=f"По адресу {base_url} отвечает не Мегаплан (ответ {exc.status})")
    credential = existing or Credential(account_id=account_id)
    tokens = store.load()
    credential.title, credential.login, credential.base_url = title, login, base_url
    credential.password_enc = encrypt(password)
    credential.access_token_enc = encrypt(tokens.access_token) if tokens else None
    credential.refresh_token_enc = encrypt(tokens.refresh_token) if tokens else None
    credential.token_expires_at = tokens.expires_at if tokens else None
    credential.megaplan_user_name = person_name(me)
    db.session.add(credential)
    db.session.flush()
    store_directory(credential, directory)
    db.session.commit()
    return CheckResult(credential=credential)


def rotate_api_secret(settings: Settings, keep) -> str:
    """A new secret for the Megaplan telephony app; only its hash is kept, shown once.
    ``keep(secret)`` puts it aside for that showing first: when it cannot (Redis down), it
    raises and the old secret stays the one that works."""
    secret = new_api_secret()
    kept = keep(secret)
    settings.api_secret_hash = hash_api_secret(secret)
    settings.api_secret_hint = secret[-4:]
    cabinet.db().session.commit()
    return kept


def delete_credential(account_id: str, credential: Credential) -> None:
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    if settings is not None and settings.credential_id == credential.id:
        settings.credential_id = None
        settings.active = False  # nothing to talk to Megaplan with any more
    # SQLite enforces no foreign keys here, so the cache goes explicitly.
    db.session.execute(delete(MegaplanEmployee).where(MegaplanEmployee.credential_id == credential.id))
    db.session.delete(credential)
    db.session.commit()
