"""Value types passed between the cabinet host and its plugins.

Frozen dataclasses of primitives only, so that a plugin can put them on a queue as they are
(``dataclasses.asdict``) and rebuild them with ``from_dict`` on the other side. Datetimes are
UTC-aware. Phone numbers are digits only, ``7XXXXXXXXXX`` for Russian numbers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

CALL_STATUSES = (
    "answered", "missed", "busy", "cancelled", "unavailable", "not_allowed", "not_found", "failed",
)
DIRECTIONS = ("in", "out")


@dataclass(frozen=True)
class PbxUser:
    login: str
    name: str
    ext: str | None = None
    telnum: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> PbxUser | None:
        return cls(**data) if data else None


@dataclass(frozen=True)
class CallEvent:
    account_id: str
    call_id: str
    direction: str
    client_phone: str
    virtual_number: str | None
    user: PbxUser | None
    at: datetime
    group_name: str | None = None
    transferred_from: PbxUser | None = None  # only on call_transferred (revision 2)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CallEvent:
        data = dict(data)
        data["user"] = PbxUser.from_dict(data.get("user"))
        data["transferred_from"] = PbxUser.from_dict(data.get("transferred_from"))
        data["at"] = datetime.fromisoformat(data["at"])
        return cls(**data)


@dataclass(frozen=True)
class CallRecord:
    account_id: str
    call_id: str
    direction: str
    client_phone: str
    virtual_number: str | None
    status: str
    user: PbxUser | None
    started_at: datetime
    duration_seconds: int    # the whole call as the PBX reports it, ringing included
    wait_seconds: int = 0    # the ringing part of it (talk time = duration - wait)
    users_rung: tuple[PbxUser, ...] = field(default_factory=tuple)
    recording_url: str | None = None
    rating: int | None = None
    group_name: str | None = None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["users_rung"] = [dataclasses.asdict(u) for u in self.users_rung]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CallRecord:
        data = dict(data)
        data["user"] = PbxUser.from_dict(data.get("user"))
        data["users_rung"] = tuple(PbxUser(**u) for u in data.get("users_rung") or ())
        data["started_at"] = datetime.fromisoformat(data["started_at"])
        return cls(**data)


@dataclass(frozen=True)
class CallRating:
    """The customer's score of a finished call (PBX ``cmd=rating``; revision 4)."""

    account_id: str
    call_id: str
    score: int
    client_phone: str | None = None
    user: PbxUser | None = None
    at: datetime | None = None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat() if self.at else None
        return data


@dataclass(frozen=True)
class Route:
    """Who should take an incoming call; ``contact_name`` is shown on the employee's phone."""

    user_login: str
    contact_name: str | None = None


@dataclass(frozen=True)
class PluginInfo:
    key: str
    title: str
    description: str
    settings_endpoint: str | None = None
