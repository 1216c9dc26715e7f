"""Finished calls written to Megaplan many per request, each once.

A call with no CallInfo yet (Redis vouches: ``known_calls``) whose client the local index
names, or that has none (an own number), is one item of ``POST /callInfo/history``. The job
writing such a call takes along the account's other waiting calls that need nothing but that
item (no communication, no callback to close), oldest first, up to ``HISTORY_BATCH_SIZE``: a
backlog (Megaplan down all morning) drains a hundred calls per request instead of one. The
job's own call goes on to its communication and callbacks as usual.

Every call taken along is held under its call lock, taken without waiting, so a call another
job is on stays out and its own job sends it. The locks are let go only after the job's
commit: the taken calls' own jobs then find their rows sent, or the call finished in Redis,
and send nothing.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import or_, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import callbacks, client_index, contractors, mapping, sync
from megaplan_plugin.calls.mapping import owner_of
from megaplan_plugin.calls.rules import not_for_megaplan
from megaplan_plugin.delivery import known_calls, locks, outcomes
from megaplan_plugin.megaplan import MegaplanClient, MegaplanError, unconfirmed
from megaplan_plugin.models import OutboxEntry, Settings

log = logging.getLogger(__name__)


@dataclass
class _Taken:
    row: OutboxEntry
    fields: dict
    contractor: dict | None
    own_number: bool
    notes: list


def write(client: MegaplanClient, settings: Settings, row: OutboxEntry, fields: dict,
          held: contextlib.ExitStack) -> dict:
    """Create ``row``'s call finished, with the account's other waiting calls alike; returns
    ``row``'s CallInfo. ``held`` keeps the other calls' locks until after the commit."""
    taken = _take_others(settings, row, held)
    if taken:
        try:
            saved = client.save_call_history([fields] + [t.fields for t in taken])
        except MegaplanError as exc:
            if exc.transient:
                raise
            # One of them may be what Megaplan refuses: ours goes alone, theirs with their jobs.
            log.warning("megaplan: a history batch of %d calls was refused (%s); sending %s alone",
                        len(taken) + 1, exc, row.call_id)
        else:
            by_provider = {str(c.get("providerId")): c for c in _listed(saved)}
            _sent([(one, by_provider[one.row.call_id]) for one in taken
                   if by_provider.get(one.row.call_id) is not None])
            if by_provider.get(row.call_id) is not None:
                return by_provider[row.call_id]
    return _listed(client.save_call_history([fields]))[0]


def _listed(saved) -> list[dict]:
    return saved if isinstance(saved, list) else [saved]


def _take_others(settings: Settings, row: OutboxEntry, held: contextlib.ExitStack) -> list[_Taken]:
    room = unconfirmed.HISTORY_BATCH_SIZE - 1
    conn = current_app.extensions["megaplan"].redis
    wanted = _communication_kinds(settings)
    waiting = cabinet.db().session.execute(select(OutboxEntry).where(
        OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == row.account_id,
        OutboxEntry.state == OutboxEntry.PENDING, OutboxEntry.id != row.id,
        OutboxEntry.started_at >= known_calls.vouched_after(conn), *_no_communication(wanted))
        .order_by(OutboxEntry.started_at).limit(room)).scalars().all()
    waiting = [w for w in waiting if not not_for_megaplan(settings, w.virtual_number)]
    if not waiting:
        return []
    own = contractors.own_numbers(row.account_id)
    matches = client_index.lookup_many(settings.credential_id,
                                       [w.client_phone for w in waiting if w.client_phone not in own])
    with_callbacks = callbacks.numbers_with_open(
        row.account_id, [w.client_phone for w in waiting if w.status == sync.ANSWERED])
    locked = []
    for other in waiting:
        if other.client_phone not in own and other.client_phone not in matches:
            continue  # its client must be searched for in Megaplan: its own job does that
        if other.status == sync.ANSWERED and other.client_phone in with_callbacks:
            continue
        lock = locks.call_lock(other.account_id, other.call_id)
        if lock.acquire(blocking=False):  # else its own job is on it
            held.callback(_release, lock)
            locked.append(other)
    # Looked at under the locks: a popup made before them is in Redis now.
    popped = known_calls.remembered(conn, row.account_id, [o.call_id for o in locked])
    taken, owners = [], {}
    for other in locked:
        if other.call_id in popped:
            continue
        match = matches.get(other.client_phone)
        contractor = match.contractor if match else None
        owner = _owner(settings, other.record.get("user"), owners)
        notes = [mapping.note(owner), client_index.choice_note(match) if match else None,
                 sync.dropped_recording(other.record)]
        taken.append(_Taken(other, sync.history_fields(other.record, owner, contractor),
                            contractor, other.client_phone in own, notes))
    return taken


def _owner(settings: Settings, user: dict | None, seen: dict):
    """owner_of, asked once per extension of the batch (it reads the employee mapping)."""
    key = None if user is None else str(user.get("ext"))
    if key not in seen:
        seen[key] = owner_of(settings, user)
    return seen[key]


def _communication_kinds(settings: Settings) -> set[str]:
    return set(settings.communication_types or []) if settings.create_communication else set()


def _no_communication(kinds: set[str]) -> list:
    """SQL conditions leaving out the calls whose kind (sync.communication_kind) wants a todo."""
    conditions = []
    if "out" in kinds:
        conditions.append(OutboxEntry.direction != "out")
    if "in" in kinds:
        conditions.append(or_(OutboxEntry.direction != "in", OutboxEntry.status != sync.ANSWERED))
    if "missed" in kinds:
        conditions.append(or_(OutboxEntry.direction != "in", OutboxEntry.status == sync.ANSWERED))
    return conditions


def _sent(done: list[tuple[_Taken, dict]]) -> None:
    if not done:
        return
    account_id = done[0][0].row.account_id
    known_calls.remember_many(current_app.extensions["megaplan"].redis, account_id,
                              [(one.row.call_id, call) for one, call in done], "finished")
    remembered = set()
    for one, call in done:
        row = one.row
        if not one.own_number and row.client_phone not in remembered:
            contractors.remember(row.account_id, row.client_phone, one.contractor)
            remembered.add(row.client_phone)
        row.attempts, row.megaplan_call_id = row.attempts + 1, str(call["id"])
        outcomes.record(row, OutboxEntry.SENT, reason="; ".join(n for n in one.notes if n) or None)


def _release(lock) -> None:
    with contextlib.suppress(LockError):
        lock.release()
