"""What a call becomes in Megaplan: whose it is, the popup while it rings, the history entry
once it is over, and its communication (the «Перезвонить» callbacks: calls/callbacks.py).

One PBX call is one ``CallInfo``, keyed by ``providerId`` = the PBX call id. The requests are
the writer's (``delivery/``), each under a durable intent. Helpers here never commit: the
writer does, once per call.

Ownership: the PBX employee maps to the Megaplan employee by telephony internal number (PBX
extension = ``CallUserConfig.internalNumber``), as the provider's «Важно» note requires.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from megaplan_plugin import phones
from megaplan_plugin.megaplan import datetime_value, link, unconfirmed
from megaplan_plugin.models import MegaplanEmployee, Settings

log = logging.getLogger(__name__)

ANSWERED = "answered"


# -- whose call it is ---------------------------------------------------------------------------
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


# -- the CallInfo ---------------------------------------------------------------------------------


def call_type(direction: str, status: str) -> str:
    if direction == "in":
        return "in" if status == ANSWERED else "miss"
    return "out" if status == ANSWERED else unconfirmed.FAILED_OUTGOING_CALL_TYPE


def parties(direction: str, client_phone: str, own_number: str | None, employee_id: str | None,
            contractor: dict | None = None) -> dict:
    """fromPhone/toPhone, the employee on our side and the client on the other."""
    ours = link("Employee", employee_id) if employee_id else None
    theirs = link(contractor["contentType"], contractor["id"]) if contractor else None
    own = own_number or ""
    if direction == "in":
        fields = {"fromPhone": client_phone, "toPhone": own, "toUser": ours, "fromUser": theirs}
    else:
        fields = {"fromPhone": own, "toPhone": client_phone, "fromUser": ours, "toUser": theirs}
    return {key: value for key, value in fields.items() if value is not None}


def popup_fields(event: dict, owner: CallOwner, state: str, contractor: dict | None = None) -> dict:
    """The popup's CallInfo; ``contractor`` (from the local index) shows who calls at once."""
    user = event.get("user") or {}
    fields = {"contentType": "CallInfo", "providerId": event["call_id"], "type": event["direction"],
              "state": state, "timeFrom": datetime_value(datetime.fromisoformat(event["at"]))}
    fields.update(parties(event["direction"], event["client_phone"],
                          event.get("virtual_number") or user.get("ext"), owner.employee_id,
                          contractor))
    return fields


# What the PBX's `duration` covers is not documented. Public integrations (reference §7) read
# it as the whole call, ringing included, beside `wait` for the ringing: so the call ends at
# start + duration and was talked for duration - wait. This is the one place that decides it.
DURATION_INCLUDES_WAIT = True


def call_times(record: dict) -> tuple[datetime, datetime, int]:
    """(start, end, talk seconds) of a finished call."""
    started = datetime.fromisoformat(record["started_at"])
    duration, wait = record.get("duration_seconds") or 0, record.get("wait_seconds") or 0
    whole = duration if DURATION_INCLUDES_WAIT else wait + duration
    talk = max(0, duration - wait) if DURATION_INCLUDES_WAIT else duration
    return started, started + timedelta(seconds=whole), talk


def history_fields(record: dict, owner: CallOwner, contractor: dict | None = None,
                   record_link: str | None = None) -> dict:
    """The finished CallInfo; ``record_link``: the plugin's own link to the recording
    (calls/recording_links.py), else the PBX's when it is one Megaplan may show."""
    started, ended, _ = call_times(record)
    user = record.get("user") or {}
    fields = {"contentType": "CallInfo", "providerId": record["call_id"],
              "type": call_type(record["direction"], record["status"]), "state": "finished",
              "timeFrom": datetime_value(started), "timeTo": datetime_value(ended)}
    if recording_link(record):
        fields["recordLinks"] = [record_link or record["recording_url"]]
    fields.update(parties(record["direction"], record["client_phone"],
                          record.get("virtual_number") or user.get("ext"), owner.employee_id,
                          contractor))
    return fields


def recording_link(record: dict) -> str | None:
    """The recording URL when it is one Megaplan may show as a link: http(s) with a host."""
    url = record.get("recording_url")
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def dropped_recording(record: dict) -> str | None:
    """The journal's note when a recording link from the PBX was not passed on."""
    if record.get("recording_url") and not recording_link(record):
        return "ссылка на запись отброшена: это не адрес http(s)"
    return None


def communication_kind(record: dict) -> str:
    if record["direction"] == "out":
        return "out"
    return "in" if record["status"] == ANSWERED else "missed"


def communication_fields(record: dict, owner: CallOwner, contractor: dict | None,
                         missed_by: list[str] | None = None, category_id: str | None = None,
                         deadline: str | None = None, deal_id: str | None = None,
                         rating: str | None = None) -> dict:
    """The call's one communication (Todo); a missed call's is the open task to call back,
    for the employees who missed it (``missed_by``, Megaplan ids in the order they rang).
    ``category_id``: the account's category for calls, so Megaplan shows it as a call;
    ``deal_id``: the client's open deal it is related to; ``rating``: the customer's score,
    a line of the description."""
    kind = communication_kind(record)
    pretty = phones.display(record["client_phone"])
    name = {"in": f"Входящий звонок {pretty}", "out": f"Исходящий звонок {pretty}",
            "missed": f"Перезвонить: пропущенный звонок {pretty}"}[kind]
    fields = {"contentType": "Todo", "name": name}
    people = (missed_by or []) if kind == "missed" else []
    responsible = people[0] if people else owner.responsible_id
    if responsible:
        fields["responsible"] = link("Employee", responsible)
    if people[1:]:
        fields["participants"] = [{"contentType": "Participant", "subject": link("Employee", p)}
                                  for p in people[1:]]
    if contractor is not None:
        fields["relations"] = [link(contractor["contentType"], contractor["id"])]
        if deal_id:
            fields["relations"].append(link("Deal", deal_id))
    if category_id:
        fields["category"] = link("TodoCategory", category_id)
    if deadline:  # a callback's deadline, where unconfirmed.py says it goes
        fields.update(unconfirmed.callback_deadline_fields(deadline))
    if rating:
        fields["description"] = "\n".join(filter(None, [fields.get("description"), rating]))
    return fields
