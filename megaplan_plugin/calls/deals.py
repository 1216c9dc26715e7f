"""Open deals by client: the local index ``megaplan_deal``, per credential.

«Связывать звонок с открытой сделкой клиента» relates a call's communication to the client's
open deal, and «Сначала ответственный по сделке» rings the deal's manager first
(``routing.py``). Both read this index only, so a call whose client has no open deal costs no
request more than before, and routing never waits on Megaplan. The index is read whole
(``GET /deal``, unconfirmed.py says why) with the clients, for the credentials of accounts that
use deals. With several open deals, the most recently changed one counts.
"""
from __future__ import annotations

from sqlalchemy import delete, insert, select

from megaplan_plugin.models import OpenDeal, Settings

CLIENT_TYPES = ("ContractorHuman", "ContractorCompany")


def wanted(settings) -> bool:
    """The account uses deals (``settings``: its ``Settings``)."""
    return bool(settings.link_open_deal or (settings.route_to_manager and settings.deal_manager_first))


def credential_wants(session, credential_id: int) -> bool:
    return session.execute(select(Settings.account_id).where(
        Settings.credential_id == credential_id, Settings.active.is_(True),
        (Settings.link_open_deal.is_(True)) | (Settings.route_to_manager.is_(True)
                                               & Settings.deal_manager_first.is_(True))).limit(1)).first() is not None


def replace(session, credential_id: int, found: list[dict]) -> int:
    """Replace the credential's index with the open deals read from Megaplan (``found``:
    ``MegaplanClient.open_deals``; empty when no account of the credential uses deals)."""
    rows = {}
    for deal in found:
        row = _row(credential_id, deal)
        if row is not None:
            rows[row["deal_id"]] = row
    session.execute(delete(OpenDeal).where(OpenDeal.credential_id == credential_id))
    if rows:
        session.execute(insert(OpenDeal), list(rows.values()))
    return len(rows)


def _row(credential_id: int, deal: dict) -> dict | None:
    contractor = deal.get("contractor")
    if not isinstance(contractor, dict) or contractor.get("contentType") not in CLIENT_TYPES \
            or not contractor.get("id") or not deal.get("id"):
        return None  # a deal without a client is no call's deal
    manager = deal.get("manager")
    manager_id = str(manager["id"]) if isinstance(manager, dict) and manager.get("contentType") == "Employee" \
        and manager.get("id") else None
    updated = deal.get("timeUpdated")
    updated = updated.get("value") if isinstance(updated, dict) else updated
    return {"credential_id": credential_id, "deal_id": str(deal["id"]), "contractor_id": str(contractor["id"]),
            "name": str(deal.get("name") or f"Сделка №{deal.get('number') or deal['id']}")[:300],
            "manager_id": manager_id, "megaplan_updated_at": str(updated)[:40] if updated else None}


def latest(rows, updated: str = "megaplan_updated_at"):
    """The most recently changed of a client's open deals, then the highest id: index rows,
    or joined rows with ``deal_id`` and the time of change under the name ``updated``."""
    return max((r for r in rows if r.deal_id), default=None,
               key=lambda r: (getattr(r, updated) or "", _number(r.deal_id)))


def open_deal_of(session, credential_id: int, contractor_id: str) -> OpenDeal | None:
    return latest(session.execute(select(OpenDeal).where(
        OpenDeal.credential_id == credential_id, OpenDeal.contractor_id == str(contractor_id))).scalars().all())


def _number(value: str) -> int:
    return int(value) if value.isdigit() else 0
