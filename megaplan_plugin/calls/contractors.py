"""Finding the Megaplan client behind a number, and creating one when the settings say so.

Lookup happens before any create, under the number's lock (taken by the job).
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from megaplan_plugin import cabinet, phones
from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import KnownClient, utcnow

log = logging.getLogger(__name__)


def own_numbers(account_id: str) -> set[str]:
    """Employees' direct numbers and the account's own numbers: they never become clients."""
    pbx = cabinet.host().pbx
    return {u.telnum for u in pbx.users(account_id) if u.telnum} | set(pbx.virtual_numbers(account_id))


def cached(account_id: str, phone: str) -> KnownClient | None:
    return cabinet.db().session.execute(select(KnownClient).where(
        KnownClient.account_id == account_id, KnownClient.phone == phone)).scalar_one_or_none()


def remember(account_id: str, phone: str, contractor: dict | None) -> KnownClient:
    db = cabinet.db()
    row = cached(account_id, phone) or KnownClient(account_id=account_id, phone=phone)
    row.contractor_type = contractor.get("contentType") if contractor else None
    row.contractor_id = str(contractor["id"]) if contractor else None
    row.name = display_name(contractor) if contractor else None
    row.responsible_id = responsible_of(contractor) if contractor else None
    row.updated_at = utcnow()
    try:
        with db.session.begin_nested():  # the caller's transaction; its one commit follows
            db.session.add(row)
    except IntegrityError:  # another worker remembered the same number first
        row = cached(account_id, phone)
    return row


def find_or_create(client: MegaplanClient, phone: str, *, create: str | None,
                   responsible_id: str | None) -> dict | None:
    """The client with this number; ``create`` is "client" or "contact" to make an unknown one.

    The caller holds the number's lock (``delivery.locks.client_lock``), so two legs of one
    call or two quick calls from a new number cannot create two clients.
    """
    found = client.find_contractors_by_phone(phone)
    if found:
        return found[0]
    if create:
        return _create(client, phone, create, responsible_id)
    return None


def _create(client: MegaplanClient, phone: str, kind: str, responsible_id: str | None) -> dict:
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
