"""Finding the Megaplan client behind a number, and creating one when the settings say so.

The writer of an account asks here only for numbers the local index does not know; the
create itself runs under a durable intent (``delivery/intents.py``), so a lost answer is
looked up, never created twice.
"""
from __future__ import annotations

import logging

from megaplan_plugin import phones
from megaplan_plugin.megaplan import MegaplanClient

log = logging.getLogger(__name__)


def own_numbers(host, account_id: str) -> set[str]:
    """Employees' direct numbers and the account's own numbers: they never become clients."""
    pbx = host.pbx
    return {u.telnum for u in pbx.users(account_id) if u.telnum} | set(pbx.virtual_numbers(account_id))


def find(client: MegaplanClient, phone: str) -> dict | None:
    found = client.find_contractors_by_phone(phone)
    return found[0] if found else None


def create(client: MegaplanClient, phone: str, kind: str, responsible_id: str | None) -> dict:
    """``kind`` "client" (unknown incoming) or "contact" (unknown outgoing)."""
    # Named by what happened, with the number written the way a manager would dial it;
    # Megaplan lists people surname first, so the list reads «Новый клиент +7 (916) …».
    label = "Новый клиент" if kind == "client" else "Новый контакт"
    log.info("megaplan: creating %s for %s", kind, phone)
    return client.create_contractor_human(first_name=phones.display(phone), last_name=label,
                                          phone="+" + phone, responsible_id=responsible_id)


def display_name(contractor: dict) -> str:
    if contractor.get("name"):
        return str(contractor["name"])
    parts = [contractor.get("lastName"), contractor.get("firstName"), contractor.get("middleName")]
    return " ".join(str(p) for p in parts if p) or f"Клиент {contractor.get('id')}"


def responsible_of(contractor: dict) -> str | None:
    responsibles = contractor.get("responsibles") or []
    first = responsibles[0] if responsibles else None
    return str(first["id"]) if isinstance(first, dict) and first.get("id") else None
