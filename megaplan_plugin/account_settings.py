"""Credentials, settings and the Megaplan employee cache of an account."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select

from .crypto import encrypt, hash_api_secret, new_api_secret
from .megaplan import (InvalidDomain, MegaplanAuthError, MegaplanClient, MegaplanError,
                       MegaplanTransientError, MemoryTokenStore, normalize_domain)
from .megaplan.domain import check_domain_addresses
from .megaplan.errors import MegaplanDestinationRefused, MegaplanRedirectError, NotMegaplanError
from .models import Credential, EmployeeLink, MegaplanEmployee, Settings, utcnow

log = logging.getLogger(__name__)


def _db():
    return current_app.extensions["cabinet"].db


def settings_for(account_id: str) -> Settings:
    db = _db()
    settings = db.session.get(Settings, account_id)
    if settings is None:
        settings = Settings(account_id=account_id, api_key=secrets.token_hex(16),
                            virtual_numbers=[], communication_types=["in", "out", "missed"])
        db.session.add(settings)
        db.session.commit()
    return settings


def credentials_for(account_id: str) -> list[Credential]:
    return list(_db().session.execute(select(Credential).where(
        Credential.account_id == account_id).order_by(Credential.title)).scalars())


def credential_for(account_id: str, credential_id: int) -> Credential | None:
    """A credential of this account only; another account's id reads as missing."""
    credential = _db().session.get(Credential, credential_id)
    return credential if credential is not None and credential.account_id == account_id else None


@dataclass
class CheckResult:
    credential: Credential | None = None
    field: str | None = None
    error: str | None = None


def check_and_store_credential(account_id: str, *, title: str, login: str, password: str | None,
                               domain: str, existing: Credential | None = None) -> CheckResult:
    """Log in to Megaplan with what the admin typed; store it only when Megaplan said yes."""
    db = _db()
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
        from .crypto import decrypt
        password = decrypt(existing.password_enc)
    store = MemoryTokenStore()
    client = MegaplanClient(base_url, login, password, token_store=store, allow_http=allow_http)
    try:
        me = client.current_user()
        employees = _fetch_employees(client)
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
    credential.megaplan_user_name = _name(me)
    db.session.add(credential)
    db.session.flush()
    _store_employees(credential, employees)
    db.session.commit()
    return CheckResult(credential=credential)


def create_missing_configs(account_id: str, credential: Credential) -> int:
    """Write the employee ↔ internal number records (``callUserConfig``) of hand-made links
    that Megaplan lacks; an employee or number that already has one is never touched."""
    from .connection import client_for
    client = client_for(credential)
    numbers = client.internal_numbers()
    taken = set(numbers.values())
    users = {u.login: u for u in current_app.extensions["cabinet"].pbx.users(account_id)}
    created = 0
    for link in links_of(account_id).values():
        user = users.get(link.pbx_login)
        if link.config_created_at is not None or user is None or not user.ext:
            continue
        if link.megaplan_employee_id in numbers or user.ext in taken:
            continue  # someone set it up in Megaplan meanwhile: theirs stands
        client.save_call_user_config(link.megaplan_employee_id, user.ext)
        link.config_created_at = utcnow()
        created += 1
    _store_employees(credential, _fetch_employees(client))
    return created


def refresh_employees(credential: Credential) -> None:
    """Reload Megaplan employees and their internal numbers (raises MegaplanError)."""
    from .connection import client_for
    employees = _fetch_employees(client_for(credential))
    _store_employees(credential, employees)
    _db().session.commit()


def _fetch_employees(client: MegaplanClient) -> list[dict]:
    numbers = client.internal_numbers()
    return [{"megaplan_id": str(e["id"]), "name": _name(e), "position": _position(e),
             "internal_number": numbers.get(str(e["id"]))} for e in client.employees()]


def _store_employees(credential: Credential, employees: list[dict]) -> None:
    db = _db()
    db.session.execute(delete(MegaplanEmployee).where(MegaplanEmployee.credential_id == credential.id))
    db.session.add_all(MegaplanEmployee(credential_id=credential.id, **e) for e in employees)
    credential.employees_fetched_at = utcnow()


def employees_of(credential_id: int | None) -> list[MegaplanEmployee]:
    if credential_id is None:
        return []
    return list(_db().session.execute(select(MegaplanEmployee).where(
        MegaplanEmployee.credential_id == credential_id).order_by(MegaplanEmployee.name)).scalars())


@dataclass(frozen=True)
class MappingRow:
    user: object                      # PbxUser
    employee: MegaplanEmployee | None  # matched by internal number in Megaplan
    link: EmployeeLink | None          # a hand-made link, its config created or still to create
    linkable: list                     # Megaplan employees without a number, for the select


def employee_mapping(account_id: str, pbx_users, employees: list[MegaplanEmployee]) -> list[MappingRow]:
    """Each PBX employee with the Megaplan employee whose telephony internal number matches,
    or the one it was linked to by hand."""
    by_number = {e.internal_number: e for e in employees if e.internal_number}
    links = links_of(account_id)
    free = [e for e in employees if not e.internal_number]
    return [MappingRow(user, by_number.get(user.ext) if user.ext else None, links.get(user.login), free)
            for user in pbx_users]


def links_of(account_id: str) -> dict[str, EmployeeLink]:
    return {link.pbx_login: link for link in _db().session.execute(
        select(EmployeeLink).where(EmployeeLink.account_id == account_id)).scalars()}


def save_links(account_id: str, pbx_users, employees: list[MegaplanEmployee], chosen: dict) -> bool:
    """Keep the hand-made links the form sent (``chosen``: PBX login → Megaplan id or "");
    returns whether a callUserConfig is waiting to be created."""
    free = {e.megaplan_id for e in employees if not e.internal_number}
    links = links_of(account_id)
    for user in pbx_users:
        if not user.ext or user.login not in chosen:
            continue
        wanted, link = chosen[user.login], links.get(user.login)
        if link is not None and link.config_created_at is None and wanted != link.megaplan_employee_id:
            _db().session.delete(link)
            link = None
        if wanted in free and link is None:
            _db().session.add(EmployeeLink(account_id=account_id, pbx_login=user.login,
                                           megaplan_employee_id=wanted))
    _db().session.flush()
    return any(link.config_created_at is None for link in links_of(account_id).values())


def rotate_api_secret(settings: Settings) -> str:
    """A new secret for the Megaplan telephony app; only its hash is kept, shown once."""
    secret = new_api_secret()
    settings.api_secret_hash = hash_api_secret(secret)
    settings.api_secret_hint = secret[-4:]
    _db().session.commit()
    return secret


def delete_credential(account_id: str, credential: Credential) -> None:
    db = _db()
    settings = db.session.get(Settings, account_id)
    if settings is not None and settings.credential_id == credential.id:
        settings.credential_id = None
        settings.active = False  # nothing to talk to Megaplan with any more
    # SQLite enforces no foreign keys here, so the cache goes explicitly.
    db.session.execute(delete(MegaplanEmployee).where(MegaplanEmployee.credential_id == credential.id))
    db.session.delete(credential)
    db.session.commit()


def _name(entity: dict) -> str:
    if entity.get("name"):
        return str(entity["name"])
    parts = [entity.get("lastName"), entity.get("firstName"), entity.get("middleName")]
    return " ".join(p for p in parts if p) or f"Сотрудник {entity.get('id')}"


def _position(entity: dict) -> str | None:
    position = entity.get("position")
    if isinstance(position, dict):
        return position.get("name")
    return position or None
