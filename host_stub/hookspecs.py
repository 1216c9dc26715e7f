"""The contract between the cabinet host and its plugins (pluggy project ``cabinet``).

Every argument is keyword-only; an implementation may accept any subset of them. The host calls
the call hooks (``call_started``, ``call_answered``, ``call_ended``, ``route_request``) only for
plugins enabled on the event's account, so a plugin never sees another tenant's calls.

An implementation must never raise into the host: pluggy would stop calling the remaining
plugins. It catches, logs and records its own failures. The stub host calls hooks plainly, so
that tests do see plugin bugs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from flask import Flask

    from .host import Host
    from .types import CallEvent, CallRating, CallRecord, PluginInfo, Route

PROJECT_NAME = "cabinet"
ENTRY_POINT_GROUP = "cabinet.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def cabinet_plugin_info() -> PluginInfo:
    """Describe the plugin for the cabinet's plugin list.

    Called whenever the host builds the plugin list; must be cheap and side-effect free.

    :return: a :class:`~host_stub.types.PluginInfo`: ``key`` (stable, URL-safe, the plugin's id in
        the account's enabled list), ``title`` and ``description`` (Russian, shown to the cabinet
        user) and ``settings_endpoint`` (a Flask endpoint name for the «Настройки» link, or None).
    Not firstresult: the host collects one answer per plugin.
    """


@hookspec
def cabinet_init_app(app: Flask, host: Host) -> None:
    """Set the plugin up inside the host application, once, from ``create_app``.

    :param app: the host's Flask application (config already loaded, ``host.db`` initialised).
    :param host: the host services object (also ``app.extensions["cabinet"]``).
    Register blueprints, CLI commands, config defaults and tables here (``host.add_tables(
    metadata)``; table names prefixed with the plugin key); start nothing that blocks. The host
    creates the database tables after every plugin has run this hook.
    :return: None. Time budget: start-up only, no network I/O.
    """


@hookspec
def call_started(host: Host, event: CallEvent) -> None:
    """A phone starts ringing, or an employee dials out.

    Fired for PBX events ``INCOMING`` (once per employee leg: a group call rings several
    employees, each a separate event with the same ``call_id``) and ``OUTGOING``.

    :param host: the host services object.
    :param event: :class:`~host_stub.types.CallEvent`; ``event.user`` is the ringing or dialling
        employee, or None for a group/IVR leg.
    :return: None.
    Time budget: p99 ≤ 2 ms on the host's request thread: record and enqueue only, no network
    I/O to third parties.
    """


@hookspec
def call_answered(host: Host, event: CallEvent) -> None:
    """An employee picked up a ringing call (PBX event ``ACCEPTED``).

    :param host: the host services object.
    :param event: :class:`~host_stub.types.CallEvent`; ``event.user`` is who answered.
    :return: None.
    Time budget: as :func:`call_started` (p99 ≤ 2 ms, enqueue only).
    """


@hookspec
def call_transferred(host: Host, event: CallEvent) -> None:
    """An answered call moved to another employee (PBX event ``TRANSFERRED``; revision 2).

    The call keeps its ``call_id``. A plugin written for revision 1 has no implementation of
    this hook and keeps working: it sees the call's ``call_ended`` with the employee who
    finished it.

    :param host: the host services object.
    :param event: :class:`~host_stub.types.CallEvent`; ``event.user`` is the employee now on
        the call, ``event.transferred_from`` the one who had it before (None if unknown).
    :return: None.
    Time budget: as :func:`call_started` (p99 ≤ 2 ms, enqueue only).
    """


@hookspec
def call_ended(host: Host, record: CallRecord) -> None:
    """A call is over: fired once per call with its final record (PBX ``history`` push).

    The record is authoritative (status, duration, recording), even when no live event of the
    call reached the plugin. The host may deliver it more than once when the PBX repeats the
    push; ``record.call_id`` is the idempotency key.

    :param host: the host services object.
    :param record: :class:`~host_stub.types.CallRecord`.
    :return: None.
    Time budget: as :func:`call_started` (p99 ≤ 2 ms); the record must be stored durably before
    the hook returns, since the PBX does not send it again.
    """


@hookspec
def call_rated(host: Host, rating: CallRating) -> None:
    """The customer rated a call after it ended (PBX ``cmd=rating``, a post-call survey;
    revision 4).

    It may come before or after the call's ``call_ended``, and more than once; a score that
    the ``history`` carried comes in ``record.rating`` of ``call_ended`` instead. A plugin
    written for an earlier revision has no implementation of this hook and keeps working.

    :param host: the host services object.
    :param rating: :class:`~host_stub.types.CallRating`; ``rating.call_id`` is the call's id.
    :return: None.
    Time budget: as :func:`call_started` (p99 ≤ 2 ms, store and enqueue only).
    """


@hookspec(firstresult=True)
def route_request(host: Host, event: CallEvent) -> Route | None:
    """An incoming call arrived and is held until someone says whom to ring (PBX ``contact``).

    :param host: the host services object.
    :param event: :class:`~host_stub.types.CallEvent` with ``user`` None (nobody rings yet).
    :return: :class:`~host_stub.types.Route` (``user_login`` of a PBX employee of the account and
        an optional ``contact_name`` shown on the phone), or None for "no opinion".
    firstresult: the first non-None answer wins.
    Time budget: the host waits at most ``CABINET_ROUTE_TIMEOUT_MS`` (default 1000 ms) and then
    answers the PBX with no route. Answer from local data; no blocking network I/O on this path.
    """
