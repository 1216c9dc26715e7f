"""RQ job functions: every Megaplan write happens here, never in a hook.

Jobs take ids and plain dicts, build their own app context, are idempotent (every write is
keyed by the PBX call id), re-raise transient errors so RQ's ``Retry`` applies, and record
their outcome on the call's row.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import current_app
from rq import get_current_job

from . import contractors, sync
from .appctx import with_app_context
from .connection import client_for
from .mapping import owner_of
from .megaplan import MegaplanError, MegaplanTransientError
from .models import CallLog, Credential, Settings
from .queue import POPUP_MAX_AGE

log = logging.getLogger(__name__)
LIVE_CALL_KEY_SECONDS = 4 * 3600
OWNER_NOTES = {
    "no_employee": "звонок без сотрудника: ответственный по умолчанию",
    "unmapped": "сотрудник не найден в Мегаплан",
    "unknown_employee_user": "сотрудник не найден в Мегаплан: сохранён от имени выбранного пользователя",
}


def _db():
    return current_app.extensions["cabinet"].db


def live_call_key(account_id: str, megaplan_call_id) -> str:
    return f"megaplan:livecall:{account_id}:{megaplan_call_id}"


def _usable(settings: Settings | None, virtual_number: str | None) -> str | None:
    """Why a call of this account is not for Megaplan now, or None."""
    if settings is None or not settings.active or settings.credential_id is None:
        return "интеграция не активна"
    if settings.filter_by_numbers and (virtual_number or "") not in (settings.virtual_numbers or []):
        return f"номер {virtual_number or '—'} не в списке виртуальных номеров"
    return None


@with_app_context
def live_event(account_id: str, hook: str, payload: dict) -> str:
    """Open (``call_started``) or move to talking (``call_answered``) the call's popup."""
    at = datetime.fromisoformat(payload["at"])
    if datetime.now(timezone.utc) - at > POPUP_MAX_AGE:
        return "stale"  # a popup a minute late is noise; history comes from call_ended
    db = _db()
    settings = db.session.get(Settings, account_id)
    if _usable(settings, payload.get("virtual_number")):
        return "skipped"
    owner = owner_of(settings, payload.get("user"))
    if owner.employee_id is None:
        return "no-employee"  # a popup needs a Megaplan user to show it to
    client = client_for(db.session.get(Credential, settings.credential_id))
    existing = client.get_call_by_provider(payload["call_id"])
    if existing is not None and existing.get("state") == "finished":
        return "finished"
    if hook == "call_started":
        if existing is not None:
            return "exists"  # another leg of a group call: one call, one popup
        call = client.create_call(sync.popup_fields(payload, owner, "calling"))
    else:
        fields = sync.popup_fields(payload, owner, "talking")
        fields.pop("timeFrom")
        if existing is None:
            call = client.create_call(fields)
        else:
            # The answering employee takes over the one popup of a group call.
            call = client.update_call(existing["id"], fields)
    current_app.extensions["megaplan"].redis.set(
        live_call_key(account_id, call["id"]), payload["call_id"], ex=LIVE_CALL_KEY_SECONDS)
    return hook


@with_app_context
def store_call(record: dict) -> str:
    """Store a call the hook could not (database down), then sync it; raises until it can."""
    from .outbox import insert_call
    from .queue import enqueue_sync
    row_id = insert_call(_db(), record)
    if row_id is None:
        return "stored already"
    enqueue_sync(row_id, fresh=True)
    return "stored"


@with_app_context
def sync_call(call_log_id: int) -> str:
    """Write one finished call to Megaplan: history, recording, client, communication."""
    db = _db()
    row = db.session.get(CallLog, call_log_id)
    if row is None:
        return "gone"
    if row.state in (CallLog.SENT, CallLog.SKIPPED):
        return row.state
    settings = db.session.get(Settings, row.account_id)
    reason = _usable(settings, row.virtual_number)
    if reason:
        return _finish(row, CallLog.SKIPPED, reason=reason)
    record = row.record
    owner = owner_of(settings, record.get("user"))
    row.attempts += 1
    db.session.commit()
    try:
        client = client_for(db.session.get(Credential, settings.credential_id))
        contractor = None
        if not _own_number(row.account_id, row.client_phone):
            create = None
            if row.direction == "in" and settings.create_client_on_incoming:
                create = "client"
            elif row.direction == "out" and settings.create_contact_on_outgoing:
                create = "contact"
            contractor = contractors.find_or_create(client, row.account_id, row.client_phone,
                                                    create=create, responsible_id=owner.responsible_id)
        call = sync.write_history(client, record, owner, contractor)
        if settings.create_communication and \
                sync.communication_kind(record) in (settings.communication_types or []):
            sync.ensure_communication(client, call, record, owner, contractor)
    except MegaplanTransientError as exc:
        job = get_current_job()
        last = job is None or not job.retries_left
        _finish(row, CallLog.FAILED if last else CallLog.PENDING, error=str(exc))
        raise
    except MegaplanError as exc:
        return _finish(row, CallLog.FAILED, error=str(exc))
    row.megaplan_call_id = str(call["id"])
    return _finish(row, CallLog.SENT, reason=OWNER_NOTES.get(owner.reason))


def _finish(row: CallLog, state: str, *, reason: str | None = None, error: str | None = None) -> str:
    row.state, row.reason = state, reason
    if error is not None or state == CallLog.SENT:
        row.last_error = error
    _db().session.commit()
    return state


def _own_number(account_id: str, phone: str) -> bool:
    """Employees' direct numbers and the account's own numbers never become clients."""
    pbx = current_app.extensions["cabinet"].pbx
    own = {u.telnum for u in pbx.users(account_id) if u.telnum} | set(pbx.virtual_numbers(account_id))
    return phone in own


@with_app_context
def refresh_route(account_id: str, phone: str) -> str:
    """Ask Megaplan whose client a number is, without the PBX waiting (after a slow route)."""
    from .routing import remember_route
    db = _db()
    settings = db.session.get(Settings, account_id)
    if settings is None or not settings.active or settings.credential_id is None:
        return "skipped"
    client = client_for(db.session.get(Credential, settings.credential_id))
    remember_route(current_app.extensions["cabinet"], settings.credential_id, account_id, phone,
                   client.call_route(phone))
    current_app.extensions["megaplan"].routes.forget(account_id)
    return "remembered"
