"""Megaplan employees of a credential with their telephony internal numbers
(``callUserConfig``) and whether they can take a call (``availability.py``), the account's
todo category for calls, and the ``callUserConfig`` records the plugin writes for links made by
hand on the settings page (``web/employee_table.py``). Helpers here never commit: the job or
view does.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import availability
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.megaplan import MegaplanClient, entity_name
from megaplan_plugin.megaplan.errors import MegaplanPermanentError
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
    store_directory(credential, fetch_directory(client))
    return created


@dataclass(frozen=True)
class Directory:
    """What the plugin keeps of a Megaplan account, read together and refreshed together."""
    employees: list[dict]
    call_category_id: str | None  # the todo category whose masterType is «call», if any


def fetch_directory(client: MegaplanClient) -> Directory:
    numbers = client.internal_numbers()
    employees = [{"megaplan_id": str(e["id"]), "name": person_name(e), "position": _position(e),
                  "internal_number": numbers.get(str(e["id"])), **availability.absence_fields(e)}
                 for e in client.employees()]
    return Directory(employees, _call_category(client))


def _call_category(client: MegaplanClient) -> str | None:
    """A communication is a call in Megaplan's own terms where the account has a category for
    calls; an account without one (or that will not list them) gets plain todos."""
    try:
        return next((str(c["id"]) for c in client.todo_categories() if c.get("masterType") == "call"), None)
    except MegaplanPermanentError:
        return None


def store_directory(credential: Credential, directory: Directory) -> None:
    """Replace the credential's employees. The credential's row is locked first, so two
    stores at once (the hourly index, «Обновить список») take turns instead of both inserting
    after both deleted; the caller commits soon after (no request in between)."""
    db = cabinet.db()
    db.session.execute(select(Credential.id).where(Credential.id == credential.id).with_for_update())
    db.session.execute(delete(MegaplanEmployee).where(MegaplanEmployee.credential_id == credential.id))
    db.session.add_all(MegaplanEmployee(credential_id=credential.id, **e) for e in directory.employees)
    credential.call_category_id = directory.call_category_id
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
