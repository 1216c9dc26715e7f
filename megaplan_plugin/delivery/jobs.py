"""RQ job functions: every Megaplan write happens here, never in a hook.

Jobs take ids and plain dicts, run in an app context, are idempotent (every write is keyed by
the PBX call id and made under that call's lock), re-raise transient errors so RQ's ``Retry``
applies, record their outcome on the outbox row, and commit once, at the end.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import callbacks, client_index, contractors, mapping, sync
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.calls.mapping import employee_by_ext, owner_of
from megaplan_plugin.calls.rules import not_for_megaplan
from megaplan_plugin.delivery import history_batch, known_calls, locks, outbox, outcomes, queues
from megaplan_plugin.delivery.app_context import with_app_context
from megaplan_plugin.megaplan import MegaplanError
from megaplan_plugin.models import OutboxEntry, Credential, Settings, aware

log = logging.getLogger(__name__)


def _redis():
    return current_app.extensions["megaplan"].redis


@with_app_context
def live_event(account_id: str, hook: str, payload: dict) -> str:
    """Open (``call_started``) or move to talking (``call_answered``, ``call_transferred``:
    the popup follows whoever is on the call now) the call's one popup."""
    at = datetime.fromisoformat(payload["at"])
    if datetime.now(timezone.utc) - at > queues.POPUP_MAX_AGE:
        return "stale"  # a popup a minute late is noise; history comes from call_ended
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    if not_for_megaplan(settings, payload.get("virtual_number")):
        return "skipped"
    owner = owner_of(settings, payload.get("user"))
    if owner.employee_id is None:
        return "no-employee"  # a popup needs a Megaplan user to show it to
    client = client_for(db.session.get(Credential, settings.credential_id))
    call_id = payload["call_id"]
    known = client_index.lookup(settings.credential_id, payload["client_phone"])
    contractor = known.contractor if known else None
    with locks.call_lock(account_id, call_id):
        existing = known_calls.lookup(_redis(), client, account_id, call_id, at)
        if existing is not None and existing.get("state") == "finished":
            return "finished"
        if hook == "call_started":
            if existing is not None:
                return "exists"  # another leg of a group call: one call, one popup
            call = client.create_call(sync.popup_fields(payload, owner, "calling", contractor))
            state = "calling"
        else:
            fields = sync.popup_fields(payload, owner, "talking", contractor)
            fields.pop("timeFrom")
            # The answering employee takes over the one popup of a group call.
            call = (client.create_call(fields) if existing is None
                    else client.update_call(existing["id"], fields))
            state = "talking"
        known_calls.remember(_redis(), account_id, call_id, call, state)
    return hook


def _outbox_row(account_id: str, call_id: str) -> OutboxEntry | None:
    return cabinet.db().session.execute(select(OutboxEntry).where(
        OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == account_id,
        OutboxEntry.call_id == call_id)).scalar_one_or_none()


@with_app_context
def sync_call(account_id: str, call_id: str, record: dict | None = None) -> str:
    """Write one finished call to Megaplan: history, recording, client, communication.

    ``record`` comes along only when the hook could not store the call (database down):
    the job stores it first, and raises (so RQ retries) until it can.
    """
    db = cabinet.db()
    row = _outbox_row(account_id, call_id)
    if row is None:
        if record is None:
            return "gone"
        outbox.insert_row(db.engine, outbox.row_values(record))
        row = _outbox_row(account_id, call_id)
    if row.state in (OutboxEntry.SENT, OutboxEntry.SKIPPED):
        return row.state
    # Calls sent along with this one stay locked until the commit says they were sent.
    with contextlib.ExitStack() as held:
        try:
            return _sync(row, held)
        finally:
            db.session.commit()


def _sync(row: OutboxEntry, held: contextlib.ExitStack) -> str:
    db = cabinet.db()
    settings = db.session.get(Settings, row.account_id)
    reason = not_for_megaplan(settings, row.virtual_number)
    if reason:
        return outcomes.record(row, OutboxEntry.SKIPPED, reason=reason)
    record = row.record
    owner = owner_of(settings, record.get("user"))
    # Nothing is written before the Megaplan requests are done: on SQLite a write would hold
    # the one writer's lock through them, and a token refresh could not be saved meanwhile.
    attempts = row.attempts + 1
    known_client = found_in_megaplan = False
    local = True  # the client (or that there is none) known without asking Megaplan
    callback_todo, closed = None, []
    notes = [mapping.note(owner)]
    try:
        client = client_for(db.session.get(Credential, settings.credential_id))
        contractor = None
        if row.client_phone not in contractors.own_numbers(row.account_id):
            create = None
            if row.direction == "in" and settings.create_client_on_incoming:
                create = "client"
            elif row.direction == "out" and settings.create_contact_on_outgoing:
                create = "contact"
            known = client_index.lookup(settings.credential_id, row.client_phone)
            if known is not None:
                contractor = known.contractor
                notes.append(client_index.choice_note(known))
            else:
                with locks.client_lock(row.account_id, row.client_phone):
                    contractor = contractors.find_or_create(client, row.client_phone, create=create,
                                                            responsible_id=owner.responsible_id)
                found_in_megaplan, local = contractor is not None, False
            known_client = True
        with locks.call_lock(row.account_id, row.call_id):
            known = known_calls.lookup(_redis(), client, row.account_id, row.call_id,
                                       aware(row.started_at))
            if known is not None and known.get("state") == "finished":
                call = known  # written already, by a job that died before its commit or a batch
            elif known is None and local:
                call = history_batch.write(client, settings, row,
                                           sync.history_fields(record, owner, contractor), held)
            else:
                call = sync.write_history(client, record, owner, contractor, known)
            known_calls.remember(_redis(), row.account_id, row.call_id, call, "finished")
        kind = sync.communication_kind(record)
        if settings.create_communication and kind in (settings.communication_types or []):
            todo = sync.ensure_communication(client, call, record, owner, contractor,
                                             missed_by=_missed_by(settings, record))
            if kind == "missed":
                callback_todo = str(todo["id"])
        if record["status"] == sync.ANSWERED:
            closed = callbacks.close_reached(client, row)
    except MegaplanError as exc:
        retry, retry_in = outcomes.will_retry(getattr(exc, "retry_after", None)) \
            if exc.transient else (False, None)
        row.attempts = attempts
        outcomes.record(row, OutboxEntry.PENDING if retry else OutboxEntry.FAILED,
                        error=outcomes.describe(exc), retry_in=retry_in)
        if exc.transient:
            raise
        return row.state
    except Exception as exc:
        # A defect or an outage of ours (database, Redis): say so in the journal, let RQ retry.
        log.exception("megaplan: sync of call %s failed", row.call_id)
        retry, retry_in = outcomes.will_retry()
        row.attempts = attempts
        outcomes.record(row, OutboxEntry.PENDING if retry else OutboxEntry.FAILED,
                        error=outcomes.describe(exc), retry_in=retry_in)
        raise
    if known_client:
        contractors.remember(row.account_id, row.client_phone, contractor)
    if found_in_megaplan:
        client_index.remember(settings.credential_id, contractor)
    row.attempts, row.megaplan_call_id = attempts, str(call["id"])
    row.callback_todo_id = callback_todo or row.callback_todo_id
    callbacks.mark_closed(closed, row.call_id)
    notes.append(sync.dropped_recording(record))
    return outcomes.record(row, OutboxEntry.SENT, reason="; ".join(n for n in notes if n) or None)


def _missed_by(settings: Settings, record: dict) -> list[str]:
    """Megaplan employees who rang and did not answer, in the order the PBX rang them."""
    ids = []
    for user in record.get("users_rung") or []:
        employee_id = employee_by_ext(settings.credential_id, (user or {}).get("ext"))
        if employee_id and employee_id not in ids:
            ids.append(employee_id)
    return ids
