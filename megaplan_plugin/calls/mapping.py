"""Who a call belongs to in Megaplan: PBX employee → Megaplan employee, and the fallbacks.

The match is by telephony internal number (PBX extension = ``CallUserConfig.internalNumber``),
as the provider's «Важно» note requires.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from megaplan_plugin.models import MegaplanEmployee, Settings


@dataclass(frozen=True)
class CallOwner:
    employee_id: str | None      # whose call it is in Megaplan (popup, fromUser/toUser)
    responsible_id: str | None   # who answers for the client and the communication
    reason: str                  # "mapped" | "unknown_employee_user" | "no_employee" | "unmapped"


NOTES = {
    "no_employee": "звонок без сотрудника: ответственный по умолчанию",
    "unmapped": "сотрудник не найден в Мегаплан",
    "unknown_employee_user": "сотрудник не найден в Мегаплан: сохранён от имени выбранного пользователя",
}


def note(owner: CallOwner) -> str | None:
    """What the journal says about who the call went to, when it is not the plain case."""
    return NOTES.get(owner.reason)


def employee_by_ext(session, credential_id: int, ext: str | None) -> str | None:
    if not ext:
        return None
    return session.execute(
        select(MegaplanEmployee.megaplan_id).where(
            MegaplanEmployee.credential_id == credential_id,
            MegaplanEmployee.internal_number == str(ext))).scalars().first()


def owner_of(session, settings: Settings, user: dict | None) -> CallOwner:
    """``user`` is the PBX employee of the call as a dict (login, name, ext) or None."""
    if user is None:
        # IVR, group or `pbx`: the call is the default responsible's, so it shows up somewhere.
        default = settings.default_responsible_id
        return CallOwner(default, default, "no_employee")
    employee_id = employee_by_ext(session, settings.credential_id, user.get("ext"))
    if employee_id:
        return CallOwner(employee_id, employee_id, "mapped")
    if settings.save_unknown_employees and settings.unknown_employee_user_id:
        chosen = settings.unknown_employee_user_id
        return CallOwner(chosen, chosen, "unknown_employee_user")
    return CallOwner(None, settings.default_responsible_id, "unmapped")


def rung(session, credential_id: int, users: list | None) -> list[str]:
    """Megaplan employees who rang and did not answer, in the order the PBX rang them."""
    ids = []
    for user in users or []:
        employee_id = employee_by_ext(session, credential_id, (user or {}).get("ext"))
        if employee_id and employee_id not in ids:
            ids.append(employee_id)
    return ids
