"""Clients by phone: the local index of Megaplan clients (``megaplan_client_phone``), per
credential, and finding or creating a client in Megaplan when the index does not know a number.

Numbers are keyed by their national significant number, so «8 (916) 123-45-67», «+7 916 …»
and «9161234567» in Megaplan all match a PBX's 79161234567. When several clients share a
number, the account's own choice («Выбрать», ``megaplan_number_choice``) wins; without one,
or when the chosen client is no longer in Megaplan, the rule picks: the one with a
responsible, then the most recently updated in Megaplan, then the lowest id (the journal says
which and why).
It is the one table of clients by phone: clients found or created by calls and numbers
answered by ``callRoute`` land here too. Helpers here never commit: the job or view that
calls them does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select

from megaplan_plugin import phones
from megaplan_plugin.megaplan import MegaplanClient, contractor_phones, entity_name
from megaplan_plugin.models import ClientPhone, NumberChoice, utcnow

log = logging.getLogger(__name__)
KINDS = ("contractorHuman", "contractorCompany")


@dataclass(frozen=True)
class Match:
    contractor: dict        # {"contentType", "id", "name", "responsibles"}: enough for a link
    responsible_id: str | None
    name: str
    candidates: int         # how many clients carry this number
    chosen: bool = False    # the account's choice, not the rule's
    lost_choice: str | None = None  # the name of a chosen client no longer in Megaplan


def lookup(session, credential_id: int, phone: str) -> Match | None:
    return lookup_many(session, credential_id, [phone]).get(phone)


def choice_note(match: Match) -> str | None:
    """The journal's note when the number belongs to several clients, or a choice is gone."""
    if match.lost_choice is not None:
        return (f"выбранный для этого номера клиент «{match.lost_choice}» больше не найден в Мегаплан: "
                f"выбран «{match.name}» по правилу")
    if match.candidates > 1:
        how = "выбран вручную" if match.chosen else "выбран"
        return f"клиентов с этим номером в Мегаплан: {match.candidates}, {how} «{match.name}»"
    return None


def lookup_many(session, credential_id: int, numbers: list[str]) -> dict[str, Match]:
    """``lookup`` of many numbers in one query: number → match, for the numbers it knows."""
    nationals = {phone: phones.national(phone) for phone in numbers}
    by_national: dict[str, list] = {}
    wanted = sorted({n for n in nationals.values() if n})
    if wanted:
        for row in session.execute(select(ClientPhone).where(
                ClientPhone.credential_id == credential_id,
                ClientPhone.national.in_(wanted))).scalars():
            by_national.setdefault(row.national, []).append(row)
    choices = {c.national: c for c in session.execute(select(NumberChoice).where(
        NumberChoice.credential_id == credential_id, NumberChoice.national.in_(wanted))).scalars()} \
        if wanted and by_national else {}
    found = {}
    for phone, national in nationals.items():
        choice = choices.get(national)
        found[phone] = choose(by_national.get(national), choice.contractor_id if choice else None,
                              choice.name if choice else None)
    return {phone: match for phone, match in found.items() if match is not None}


def choose(rows, chosen_id: str | None = None, chosen_name: str | None = None) -> Match | None:
    """The documented choice among the index rows of one number (see the module docstring).

    ``rows`` need ``contractor_type``, ``contractor_id``, ``name``, ``responsible_id`` and
    ``megaplan_updated_at``: index rows, or result rows labelled alike (routing's one query).
    ``chosen_id``: the account's choice for the number, if it made one.
    """
    if not rows:
        return None
    chosen = next((r for r in rows if chosen_id is not None and r.contractor_id == chosen_id), None)
    best = chosen or sorted(rows, key=lambda r: (r.responsible_id is None, _desc(r.megaplan_updated_at),
                                                 int(r.contractor_id) if r.contractor_id.isdigit() else 0))[0]
    contractor = {"contentType": best.contractor_type, "id": best.contractor_id, "name": best.name}
    if best.responsible_id:
        contractor["responsibles"] = [{"contentType": "Employee", "id": best.responsible_id}]
    lost = (chosen_name or f"Клиент {chosen_id}") if chosen_id is not None and chosen is None else None
    return Match(contractor, best.responsible_id, best.name or "", len({r.contractor_id for r in rows}),
                 chosen=chosen is not None, lost_choice=lost)


def choose_for_number(session, credential_id: int, national: str, contractor_id: str) -> NumberChoice:
    """«Выбрать»: remember ``contractor_id`` for the number; LookupError when the index has
    no such client with this number (a stale page, a forged form)."""
    row = session.execute(select(ClientPhone).where(
        ClientPhone.credential_id == credential_id, ClientPhone.national == national,
        ClientPhone.contractor_id == contractor_id)).scalars().first()
    if row is None:
        raise LookupError(national)
    choice = session.get(NumberChoice, (credential_id, national)) or NumberChoice(
        credential_id=credential_id, national=national)
    choice.contractor_id, choice.name, choice.chosen_at = contractor_id, row.name, utcnow()
    session.add(choice)
    session.flush()
    return choice


def _desc(value: str | None) -> tuple:
    # ISO timestamps sort as text; the newest first, unknown last.
    return (value is None, "".join(chr(0x10FFFF - ord(c)) for c in value) if value else "")


def remember(session, credential_id: int, contractor: dict, numbers: list[str] | None = None) -> None:
    """Index (or re-index) one client's numbers, e.g. after a call found or created it.

    ``numbers`` (national numbers) when the contractor comes without its phones (``callRoute``
    names a client but not its card): they are added to what the index has of it.
    """
    contractor_id = str(contractor["id"])
    if numbers is None:
        numbers = contractor_phones(contractor)
        session.execute(delete(ClientPhone).where(
            ClientPhone.credential_id == credential_id, ClientPhone.contractor_id == contractor_id,
            ClientPhone.national.not_in(numbers) if numbers else True))
    existing = {r.national: r for r in session.execute(select(ClientPhone).where(
        ClientPhone.credential_id == credential_id, ClientPhone.contractor_id == contractor_id)).scalars()}
    for national in numbers:
        row = existing.get(national) or ClientPhone(credential_id=credential_id, national=national,
                                                    contractor_id=contractor_id)
        row.contractor_type = contractor.get("contentType") or "ContractorHuman"
        row.name = display_name(contractor)[:300]
        row.responsible_id = responsible_of(contractor)
        row.megaplan_updated_at = _time_updated(contractor)
        row.seen_at = utcnow()
        session.add(row)
    session.flush()


def rebuild(session, client: MegaplanClient, credential_id: int) -> int:
    """Read every client of the credential's Megaplan (paginated) into the index."""
    seen = set()
    for kind in KINDS:
        for contractor in client.contractors(kind):
            remember(session, credential_id, contractor)
            seen.add(str(contractor["id"]))
    stale = delete(ClientPhone).where(ClientPhone.credential_id == credential_id)
    if seen:
        stale = stale.where(ClientPhone.contractor_id.not_in(seen))
    session.execute(stale)
    return len(seen)


def _time_updated(contractor: dict) -> str | None:
    value = contractor.get("timeUpdated")
    if isinstance(value, dict):
        value = value.get("value")
    return str(value)[:40] if value else None


# -- in Megaplan -----------------------------------------------------------------------------------


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
    return entity_name(contractor, "Клиент")


def responsible_of(contractor: dict) -> str | None:
    responsibles = contractor.get("responsibles") or []
    first = responsibles[0] if responsibles else None
    return str(first["id"]) if isinstance(first, dict) and first.get("id") else None
