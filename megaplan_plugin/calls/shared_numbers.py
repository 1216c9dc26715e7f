"""«Номера с несколькими клиентами»: the numbers of the client index that several Megaplan
clients share, with their candidates, for the journal and the status panel.

Each candidate is shown with its responsible and the last call written with it, and whether
calls of the number go to it now (the account's choice, else the rule of ``clients.choose``).
A few indexed queries, whatever the size of the index: the numbers (grouped on the index), their
rows, the choices, the employees' names and the last calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from megaplan_plugin import phones
from megaplan_plugin.calls import clients
from megaplan_plugin.models import ClientPhone, MegaplanEmployee, NumberChoice, OutboxEntry, aware

SCAN_LIMIT = 500   # numbers looked at; an index with more shared numbers shows the most recent


@dataclass
class Candidate:
    contractor_id: str
    name: str
    responsible: str | None
    last_call: datetime | None
    used: bool = False       # calls of the number go to this client now


@dataclass
class SharedNumber:
    national: str
    display: str
    chosen: bool             # the account chose (else the rule picks)
    lost_choice: str | None  # a chosen client no longer in Megaplan
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def last_call(self) -> datetime | None:
        return max((c.last_call for c in self.candidates if c.last_call), default=None)


def shared_numbers(session, account_id: str, credential_id: int | None, limit: int = 50) -> tuple[list, int]:
    """(the first ``limit`` shared numbers, those with the latest calls first; how many there are,
    counted up to ``SCAN_LIMIT``)."""
    if credential_id is None:
        return [], 0
    nationals = list(session.execute(
        select(ClientPhone.national).where(ClientPhone.credential_id == credential_id)
        .group_by(ClientPhone.national).having(func.count(ClientPhone.contractor_id.distinct()) > 1)
        .limit(SCAN_LIMIT)).scalars())
    if not nationals:
        return [], 0
    rows: dict[str, list] = {}
    for row in session.execute(select(ClientPhone).where(
            ClientPhone.credential_id == credential_id, ClientPhone.national.in_(nationals))).scalars():
        rows.setdefault(row.national, []).append(row)
    choices = {c.national: c for c in session.execute(select(NumberChoice).where(
        NumberChoice.credential_id == credential_id, NumberChoice.national.in_(nationals))).scalars()}
    names = dict(session.execute(select(MegaplanEmployee.megaplan_id, MegaplanEmployee.name).where(
        MegaplanEmployee.credential_id == credential_id)).all())
    contractor_ids = sorted({r.contractor_id for group in rows.values() for r in group})
    last_calls = dict(session.execute(
        select(OutboxEntry.contractor_id, func.max(OutboxEntry.started_at)).where(
            OutboxEntry.account_id == account_id, OutboxEntry.contractor_id.in_(contractor_ids))
        .group_by(OutboxEntry.contractor_id)).all())
    found = []
    for national in nationals:
        group, choice = rows.get(national, []), choices.get(national)
        match = clients.choose(group, choice.contractor_id if choice else None, choice.name if choice else None)
        if match is None:
            continue
        seen, candidates = set(), []
        for row in sorted(group, key=lambda r: (r.name or "", r.contractor_id)):
            if row.contractor_id in seen:
                continue
            seen.add(row.contractor_id)
            candidates.append(Candidate(row.contractor_id, row.name or f"Клиент {row.contractor_id}",
                                        names.get(row.responsible_id) if row.responsible_id else None,
                                        aware(last_calls.get(row.contractor_id)),
                                        used=row.contractor_id == match.contractor["id"]))
        found.append(SharedNumber(national, phones.display(national), match.chosen, match.lost_choice,
                                  candidates))
    found.sort(key=lambda n: (n.last_call is None, -(n.last_call.timestamp() if n.last_call else 0), n.national))
    return found[:limit], len(found)
