"""ACME's own reading of the cabinet plugin contract: hook specs and value types.

Written from the contract (hook names and arguments, field names), not copied from the stub
host, so a plugin that passes here depends on the contract and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pluggy

PROJECT = "cabinet"
ENTRY_POINTS = "cabinet.plugins"
hookspec = pluggy.HookspecMarker(PROJECT)


class Spec:
    @hookspec
    def cabinet_plugin_info(self):
        """-> PluginInfo; one answer per plugin."""

    @hookspec
    def cabinet_init_app(self, app, host):
        """Once, while ACME builds its app."""

    @hookspec
    def call_started(self, host, event):
        """INCOMING / OUTGOING leg."""

    @hookspec
    def call_answered(self, host, event):
        """ACCEPTED."""

    @hookspec
    def call_transferred(self, host, event):
        """TRANSFERRED (revision 2)."""

    @hookspec
    def call_ended(self, host, record):
        """The final record of a call."""

    @hookspec(firstresult=True)
    def route_request(self, host, event):
        """-> Route or None; the first answer wins."""


@dataclass(frozen=True)
class PbxUser:
    login: str
    name: str
    ext: str | None = None
    telnum: str | None = None


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
    transferred_from: PbxUser | None = None


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
    duration_seconds: int
    wait_seconds: int = 0
    users_rung: tuple[PbxUser, ...] = ()
    recording_url: str | None = None
    rating: int | None = None
    group_name: str | None = None


@dataclass(frozen=True)
class Route:
    user_login: str
    contact_name: str | None = None


@dataclass(frozen=True)
class PluginInfo:
    key: str
    title: str
    description: str
    settings_endpoint: str | None = None
