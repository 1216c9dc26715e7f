"""Megaplan employees of a credential, and how PBX employees map onto them.

The cache of Megaplan's employees with their telephony internal numbers (``callUserConfig``),
the mapping table of the settings page, and the hand-made links for which the plugin writes
the missing ``callUserConfig`` records. Helpers here never commit: the job or view does.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import Credential, EmployeeLink, MegaplanEmployee, utcnow


def create_missing_configs(account_id: str, credential: Credential) -> int:
    """Write the employee ↔ internal number records (``callUserConfig``) of hand-made links
    that Megaplan lacks; an employee or number that already has one is never touched."""
    client = client_for(credential)
    numbers = client.internal_numbers()
    taken = set(numbers.values())
    users = {u.login: u for u in cabinet.host().pbx.users(account_id)}
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
    store_employees(credential, fetch_employees(client))
    return created


def refresh_employees(credential: Credential) -> None:
    """Reload Megaplan employees and their internal numbers (raises MegaplanError)."""
    employees = fetch_employees(client_for(credential))
    store_employees(credential, employees)
    cabinet.db().session.commit()


def fetch_employees(client: MegaplanClient) -> list[dict]:
    numbers = client.internal_numbers()
    return [{"megaplan_id": str(e["id"]), "name": person_name(e), "position": _position(e),
             "internal_number": numbers.get(str(e["id"]))} for e in client.employees()]


def store_employees(credential: Credential, employees: list[dict]) -> None:
    db = cabinet.db()
    db.session.execute(delete(MegaplanEmployee).where(MegaplanEmployee.credential_id == credential.id))
    db.session.add_all(MegaplanEmployee(credential_id=credential.id, **e) for e in employees)
    credential.employees_fetched_at = utcnow()


def employees_of(credential_id: int | None) -> list[MegaplanEmployee]:
    if credential_id is None:
        return []
    return list(cabinet.db().session.execute(select(MegaplanEmployee).where(
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
    return {link.pbx_login: link for link in cabinet.db().session.execute(
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
            cabinet.db().session.delete(link)
            link = None
        if wanted in free and link is None:
            cabinet.db().session.add(EmployeeLink(account_id=account_id, pbx_login=user.login,
                                           megaplan_employee_id=wanted))
    cabinet.db().session.flush()
    return any(link.config_created_at is None for link in links_of(account_id).values())


def person_name(entity: dict) -> str:
    if entity.get("name"):
        return str(entity["name"])
    parts = [entity.get("lastName"), entity.get("firstName"), entity.get("middleName")]
    return " ".join(p for p in parts if p) or f"Сотрудник {entity.get('id')}"


def _position(entity: dict) -> str | None:
    position = entity.get("position")
    if isinstance(position, dict):
        return position.get("name")
    return position or None
