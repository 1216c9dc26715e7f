"""Megaplan employees of a credential with their telephony internal numbers
(``callUserConfig``), and the ``callUserConfig`` records the plugin writes for links made by
hand on the settings page (``web/employee_table.py``). Helpers here never commit: the job or
view does.
"""
from __future__ import annotations

from sqlalchemy import delete, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.megaplan import MegaplanClient, entity_name
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


def links_of(account_id: str) -> dict[str, EmployeeLink]:
    return {link.pbx_login: link for link in cabinet.db().session.execute(
        select(EmployeeLink).where(EmployeeLink.account_id == account_id)).scalars()}


def person_name(entity: dict) -> str:
    return entity_name(entity, "Сотрудник")


def _position(entity: dict) -> str | None:
    position = entity.get("position")
    if isinstance(position, dict):
        return position.get("name")
    return position or None
