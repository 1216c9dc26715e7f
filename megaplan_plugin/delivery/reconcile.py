"""Reconciliation with the PBX's own call history: the calls whose push never arrived.

The real PBX does not resend a push the cabinet missed (cabinet down, database outage, a
network blip), but it keeps every call in its history (the ``history`` REST command, offered
to plugins as ``host.pbx.history``). Every call found there that the outbox does not hold is
inserted and queued; the outbox's unique key makes that exactly once, however often it runs
and whether or not the push arrives after all.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from megaplan_plugin.calls.rules import ACTIVE, not_for_megaplan
from megaplan_plugin.models import OutboxEntry, Settings, aware, utcnow
from megaplan_plugin.delivery import outbox, queues

log = logging.getLogger(__name__)
# The first run of an account looks this far back; later runs start where the last ended,
# minus an overlap for calls the PBX reports late.
FIRST_WINDOW = timedelta(days=1)
OVERLAP = timedelta(minutes=10)
EVERY_SECONDS = 300


def reconcile_all(host, *, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Reconcile every active account; returns {account_id: calls found}."""
    history = getattr(host.pbx, "history", None)
    if history is None:
        return {}  # a host of contract revision 1 has no history to offer
    db = host.db
    found = {}
    accounts = db.session.execute(select(Settings).where(*ACTIVE)).scalars().all()
    for settings in accounts:
        end = until or utcnow()
        start = since or (aware(settings.reconciled_until) - OVERLAP
                          if settings.reconciled_until else end - FIRST_WINDOW)
        if since is None and settings.activated_at is not None:
            # never back into a time the integration was off: that is the admin's to send
            start = max(start, aware(settings.activated_at))
        found[settings.account_id] = reconcile_account(host, settings, start, end)
    return found


def reconcile_account(host, settings: Settings, since: datetime, until: datetime, *, advance: bool = True) -> int:
    """Store the calls of ``since``..``until`` the PBX has and the outbox lacks; ``advance``:
    this is the periodic window, so the next one starts where it ends."""
    db = host.db
    records = host.pbx.history(settings.account_id, since, until)
    have = set(db.session.execute(select(OutboxEntry.call_id).where(
        OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == settings.account_id,
        OutboxEntry.call_id.in_([r.call_id for r in records]))).scalars()) if records else set()
    added = 0
    for record in records:
        if record.call_id in have or not_for_megaplan(settings, record.virtual_number):
            continue
        data = outbox.as_dict(record)
        if outbox.insert_row(db.engine, outbox.row_values(data, source="reconcile")) is not None:
            added += 1
    if advance:
        settings.reconciled_at, settings.reconciled_until = utcnow(), until
        settings.reconcile_found = added
    db.session.commit()
    if added:
        queues.wake_writer(settings.account_id)
    if added:
        log.warning("megaplan: reconciliation found %d %s of %s the cabinet never pushed",
                    added, "call" if added == 1 else "calls", settings.account_id)
    return added

