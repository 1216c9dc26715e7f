"""The settings page's table of employees: each PBX employee with its Megaplan employee, and
the links made by hand for employees Megaplan has no telephony number for yet."""
from __future__ import annotations

from dataclasses import dataclass

from megaplan_plugin import cabinet
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.calls.employees import fetch_directory, links_of, store_directory
from megaplan_plugin.models import Credential, EmployeeLink, MegaplanEmployee


def refresh_employees(credential: Credential) -> None:
    """Reload Megaplan employees, their internal numbers and the call category (raises MegaplanError)."""
    store_directory(credential, fetch_directory(client_for(credential)))
    cabinet.db().session.commit()


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
