"""Who should answer an incoming call (the decision behind «переадресация на персонального
менеджера»), and the journal's words when it is not simply the client's responsible.

In order: the manager of the client's open deal when «Сначала ответственный по сделке» is on
(the most recently changed deal, ``deals.py``), then the client's responsible. Someone who is
fired, on vacation or, when the account counts working hours, out of them cannot take the
call (``availability.py``); when nobody on the list can, the call goes to the fallback the
account chose: the default responsible, or the PBX's own order (no opinion). Someone with no
telephony internal number is passed over without a word, as before.

One statement on the local tables answers it (the client's index rows with the account's
choice for the number, the employees and the deals joined): routing runs it while the PBX
holds the caller, and the writer runs it again for the journal with the call's own start
time, which gives the same answer unless the index changed in between.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased

from megaplan_plugin import phones
from megaplan_plugin.calls import availability, clients, deadlines, deals
from megaplan_plugin.models import ClientPhone, MegaplanEmployee, NumberChoice, OpenDeal

DEFAULT, PBX = "default", "pbx"   # Settings.route_fallback
FALLBACKS = [(PBX, "оставить порядок АТС"), (DEFAULT, "направить ответственному по умолчанию")]


@dataclass(frozen=True)
class Options:
    """An account's routing settings, as routing and the writer read them."""
    deal_first: bool
    fallback_id: str | None                 # the default responsible when the fallback is theirs
    zone: tzinfo
    hours: deadlines.WorkingHours | None    # only when out of hours counts as away


def options_of(settings) -> Options:
    hours = deadlines.hours_of(settings)
    return Options(bool(settings.deal_manager_first),
                   settings.default_responsible_id if settings.route_fallback == DEFAULT else None,
                   hours.zone, hours if settings.route_respect_hours else None)


@dataclass(frozen=True)
class Answer:
    internal_number: str | None   # whom the PBX should ring; None: no opinion
    client_name: str | None
    note: str | None = None       # the journal's words, when there is something to say


@dataclass(frozen=True)
class _Person:
    id: str
    name: str
    internal_number: str | None
    working: bool
    fire_day: str | None
    vacation_first: str | None
    vacation_last: str | None


_PERSON = ("megaplan_id", "name", "internal_number", "working", "fire_day", "vacation_first", "vacation_last")


def _columns(alias, prefix: str) -> list:
    return [getattr(alias, name).label(f"{prefix}_{name}") for name in _PERSON]


def _person(row, prefix: str) -> _Person | None:
    values = [getattr(row, f"{prefix}_{name}") for name in _PERSON]
    return None if values[0] is None else _Person(*values)


@functools.cache
def statement(with_deals: bool):
    """Built once per shape, since building a statement costs as much as running it."""
    credential = bindparam("credential_id")
    responsible, fallback = aliased(MegaplanEmployee), aliased(MegaplanEmployee)
    columns = [ClientPhone.contractor_type, ClientPhone.contractor_id, ClientPhone.name,
               ClientPhone.responsible_id, ClientPhone.megaplan_updated_at,
               NumberChoice.contractor_id.label("chosen_id"), NumberChoice.name.label("chosen_name"),
               *_columns(responsible, "r"), *_columns(fallback, "f")]
    if with_deals:
        manager = aliased(MegaplanEmployee)
        columns += [OpenDeal.deal_id, OpenDeal.name.label("deal_name"),
                    OpenDeal.megaplan_updated_at.label("deal_updated_at"), *_columns(manager, "m")]
    query = select(*columns).select_from(ClientPhone) \
        .outerjoin(NumberChoice, (NumberChoice.credential_id == credential)
                   & (NumberChoice.national == ClientPhone.national)) \
        .outerjoin(responsible, (responsible.credential_id == credential)
                   & (responsible.megaplan_id == ClientPhone.responsible_id)) \
        .outerjoin(fallback, (fallback.credential_id == credential)
                   & (fallback.megaplan_id == bindparam("fallback_id")))
    if with_deals:
        query = query.outerjoin(OpenDeal, (OpenDeal.credential_id == credential)
                                & (OpenDeal.contractor_id == ClientPhone.contractor_id)) \
            .outerjoin(manager, (manager.credential_id == credential) & (manager.megaplan_id == OpenDeal.manager_id))
    return query.where(ClientPhone.credential_id == credential, ClientPhone.national == bindparam("national"))


def ask(executor, credential_id: int, phone: str, options: Options, at: datetime) -> Answer | None:
    """The answer for an incoming call from ``phone`` at ``at``; None when the index does not
    know the number. ``executor``: a connection or a session (one round trip either way)."""
    national = phones.national(phone)
    if not national:
        return None
    rows = executor.execute(statement(options.deal_first), {
        "credential_id": credential_id, "national": national, "fallback_id": options.fallback_id}).all()
    return decide(rows, options, at)


def decide(rows, options: Options, at: datetime) -> Answer | None:
    if not rows:
        return None
    match = clients.choose(rows, rows[0].chosen_id, rows[0].chosen_name)
    mine = [r for r in rows if r.contractor_id == match.contractor["id"]]
    today = at.astimezone(options.zone).date()
    out_of_hours = options.hours is not None and not options.hours.within(at)
    people = []
    if options.deal_first:
        deal = deals.latest(mine, "deal_updated_at")
        if deal is not None and _person(deal, "m") is not None:
            people.append((f"менеджер сделки «{deal.deal_name}»", "менеджеру сделки", _person(deal, "m"), True))
    if _person(mine[0], "r") is not None:
        people.append(("ответственный за клиента", "ответственному за клиента", _person(mine[0], "r"), False))
    away = []
    for who, to_whom, person, of_deal in people:
        if not person.internal_number:
            continue
        reason = availability.away(person, today, out_of_hours)
        if reason is not None:
            away.append(f"{who} {person.name} {reason}")
            continue
        note = None
        if away or of_deal:  # not simply the client's responsible: the journal says who and why
            note = "; ".join(away + [f"звонок направлен {to_whom} {person.name}"])
        return Answer(person.internal_number, match.name or None, note)
    if not away:
        return Answer(None, match.name or None)  # nobody to ring: the PBX's order, as always
    fallback = _person(mine[0], "f")
    if fallback is not None and fallback.internal_number and availability.away(fallback, today, out_of_hours) is None:
        return Answer(fallback.internal_number, match.name or None,
                      "; ".join(away) + f": звонок направлен ответственному по умолчанию {fallback.name}")
    return Answer(None, match.name or None, "; ".join(away) + ": звонок пошёл по порядку АТС")
