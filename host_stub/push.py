"""Parsing of the MegaFon CRM API pushes (PBX → CRM), reference `megafon_vats_crm_api.md` §1.

Only turns a flat dict of fields into checked values; what happens next is in ``pbx.py``.
Unknown fields are ignored and ``status`` is compared case-insensitively, as live pushes demand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from megaplan_plugin import phones

from .types import CALL_STATUSES, DIRECTIONS

COMMANDS = ("event", "history", "contact", "rating")
EVENT_TYPES = ("INCOMING", "OUTGOING", "ACCEPTED", "COMPLETED", "CANCELLED", "TRANSFERRED")

# PBX history status (lower-cased) → CallRecord.status.
HISTORY_STATUSES = {
    "success": "answered",
    "missed": "missed",
    "cancel": "cancelled",
    "busy": "busy",
    "notavailable": "unavailable",
    "notallowed": "not_allowed",
    "notfound": "not_found",
    "callaerror": "failed",
}
assert set(HISTORY_STATUSES.values()) == set(CALL_STATUSES)  # every status of the contract, no other

_REQUIRED = {
    "event": ("type", "phone", "callid"),
    "history": ("type", "status", "phone", "callid", "start", "duration"),
    "contact": ("phone", "callid"),
    "rating": ("callid", "rating"),
}


class PushError(ValueError):
    """A push the host cannot understand; answered with 400 and a JSON error."""


@dataclass(frozen=True)
class Push:
    cmd: str
    call_id: str
    phone: str | None = None
    type: str | None = None
    direction: str | None = None
    diversion: str | None = None
    user: str | None = None
    ext: str | None = None
    telnum: str | None = None
    group_name: str | None = None
    status: str | None = None
    start: datetime | None = None
    duration: int | None = None  # the whole call, ringing included (reference §7)
    wait: int | None = None      # seconds of ringing before an answer, when the PBX sends it
    link: str | None = None
    rating: int | None = None


def normalize_phone(value: str) -> str:
    """The PBX's number as the plugin and the sandbox read it (``megaplan_plugin.phones``)."""
    digits = phones.digits(value)
    if not 3 <= len(digits) <= 15:
        raise PushError(f"invalid phone number: {value!r}")
    return digits


def normalize_login(value: str) -> str:
    """``login@tenant.megapbx.ru`` and ``login`` name the same PBX user."""
    return value.split("@", 1)[0].strip().lower()


def parse_push(fields: dict) -> Push:
    cmd = _text(fields, "cmd")
    if cmd not in COMMANDS:
        raise PushError(f"unknown cmd: {cmd!r}" if cmd else "missing field: cmd")
    missing = [name for name in _REQUIRED[cmd] if not _text(fields, name)]
    if missing:
        raise PushError("missing field: " + ", ".join(missing))
    values = dict(
        cmd=cmd,
        call_id=_text(fields, "callid"),
        diversion=_optional_phone(fields, "diversion"),
        user=normalize_login(_text(fields, "user")) or None,
        ext=_text(fields, "ext") or None,
        telnum=_optional_phone(fields, "telnum"),
        group_name=_text(fields, "groupRealName") or None,
        link=_text(fields, "link") or None,
    )
    if cmd != "rating":
        values["phone"] = normalize_phone(_text(fields, "phone"))
    if cmd == "event":
        values["type"] = _text(fields, "type").upper()
        if values["type"] not in EVENT_TYPES:
            raise PushError(f"unknown event type: {values['type']!r}")
        values["direction"] = _direction(_text(fields, "direction"), required=False)
    elif cmd == "history":
        values["direction"] = _direction(_text(fields, "type"), required=True)
        values["status"] = HISTORY_STATUSES.get(_text(fields, "status").lower(), "failed")
        values["start"] = _parse_start(_text(fields, "start"))
        values["duration"] = _int(fields, "duration")
        values["wait"] = _int(fields, "wait") if _text(fields, "wait") else None
        values["rating"] = _int(fields, "rating") if _text(fields, "rating") else None
    elif cmd == "rating":
        values["rating"] = _int(fields, "rating")
        values["phone"] = _optional_phone(fields, "phone")
    return Push(**values)


# The longest value the cabinet stores of each field; anything longer is not from a PBX.
MAX_LENGTH = {"callid": 128, "user": 200, "ext": 16, "groupRealName": 200, "link": 2048}
DEFAULT_MAX_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(fields: dict, name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise PushError(f"field {name} must be a string")
    text = str(value).strip()
    if len(text) > MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH):
        raise PushError(f"field {name} is too long")
    if _CONTROL.search(text):
        raise PushError(f"field {name} contains control characters")
    if _SURROGATE.search(text):  # valid JSON («\ud800»), never text: no database would keep it
        raise PushError(f"field {name} is not valid text")
    return text


def _optional_phone(fields: dict, name: str) -> str | None:
    value = _text(fields, name)
    return normalize_phone(value) if value else None


def _direction(value: str, *, required: bool) -> str | None:
    value = value.lower()
    if value in DIRECTIONS:
        return value
    if value or required:
        raise PushError(f"invalid direction: {value!r}")
    return None


def _int(fields: dict, name: str) -> int:
    value = _text(fields, name)
    # ASCII digits only: "²" and other Unicode digits pass isdigit() and then break int()
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise PushError(f"field {name} must be a non-negative integer")
    return int(value)


# A call's start as a PBX can mean it: not before this, not later than a clock's skew from now.
# A date at the calendar's edge would be stored, then break every page that shows it in a zone.
EARLIEST_START = datetime(2000, 1, 1, tzinfo=timezone.utc)
START_SKEW = timedelta(days=1)


def _parse_start(value: str) -> datetime:
    try:
        start = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise PushError(f"invalid start (want YYYYmmddTHHMMSSZ): {value!r}") from None
    if not EARLIEST_START <= start <= datetime.now(timezone.utc) + START_SKEW:
        raise PushError(f"start out of range (from 2000 to now): {value!r}")
    return start
