"""RQ job functions: every Megaplan write happens here, never in a hook.

Jobs take ids and plain dicts, build their own app context, are idempotent, re-raise transient
errors so RQ's ``Retry`` applies, and record their outcome on the call's row.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import current_app

from .appctx import with_app_context
from .models import CallLog
from .queue import POPUP_MAX_AGE

log = logging.getLogger(__name__)


def _db():
    return current_app.extensions["cabinet"].db


@with_app_context
def live_event(account_id: str, hook: str, payload: dict) -> str:
    """Open, move or close a popup in Megaplan's telephony widget."""
    at = datetime.fromisoformat(payload["at"])
    if datetime.now(timezone.utc) - at > POPUP_MAX_AGE:
        return "stale"  # a popup a minute late is noise; history comes from call_ended
    # The popup itself is written by the call-sync feature; until the account has an active
    # integration there is nothing to show.
    return "no-integration"


@with_app_context
def sync_call(call_log_id: int) -> str:
    """Write one finished call to Megaplan (history, recording, client, communication)."""
    db = _db()
    row = db.session.get(CallLog, call_log_id)
    if row is None:
        return "gone"
    if row.state in (CallLog.SENT, CallLog.SKIPPED):
        return row.state
    row.attempts += 1
    row.state, row.reason = CallLog.SKIPPED, "интеграция не настроена"
    db.session.commit()
    return row.state
