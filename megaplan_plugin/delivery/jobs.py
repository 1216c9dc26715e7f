"""Popup jobs: one per live event of a call, on ``megaplan-live``, in order for that call.

A ring opens the call's one ``CallInfo`` (state ``calling``), an answer or a transfer moves it
to ``talking`` for whoever is on the call now. Each request on the call runs under the call's
intent (``intents.py``): the intent is made before the create, so two legs of a group call
open one popup and a lost answer is looked up, not created again; and once the history
writer has taken the call (``finished``), no popup job touches it.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from megaplan_plugin import cabinet
from megaplan_plugin.calls import clients, sync
from megaplan_plugin.calls.connection import client_for, side_engine
from megaplan_plugin.calls.rules import not_for_megaplan
from megaplan_plugin.delivery import intents, queues
from megaplan_plugin.delivery.worker import with_app_context
from megaplan_plugin.models import Credential, Intent, Settings


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
    owner = sync.owner_of(db.session, settings, payload.get("user"))
    if owner.employee_id is None:
        return "no-employee"  # a popup needs a Megaplan user to show it to
    client = client_for(db.session.get(Credential, settings.credential_id))
    known = clients.lookup(db.session, settings.credential_id, payload["client_phone"])
    contractor = known.contractor if known else None
    db.session.rollback()  # nothing to write here: give the connection back before the requests
    call_id = payload["call_id"]
    state = "calling" if hook == "call_started" else "talking"
    fields = sync.popup_fields(payload, owner, state, contractor)
    try:
        with intents.lease(side_engine(), account_id, Intent.CALL, call_id, live=True) as claim:
            if hook == "call_started" and claim.megaplan_id is not None:
                return "exists"  # another leg of a group call: one call, one popup
            if claim.megaplan_id is None and not claim.fresh:
                found = client.get_call_by_provider(call_id)  # an earlier create lost its answer
                claim.megaplan_id = str(found["id"]) if found else None
            if claim.megaplan_id is None:
                call = client.create_call(fields)
            else:
                fields.pop("timeFrom")
                # The answering employee takes over the one popup of a group call.
                call = client.update_call(claim.megaplan_id, fields)
            claim.record(call["id"])
    except intents.Finished:
        return "finished"
    except intents.Busy:
        if hook == "call_started":
            return "exists"  # the other leg is opening it right now
        # Another popup job's request on this call is in flight: this one follows it.
        queues.enqueue_live(payload, hook, at=datetime.now(timezone.utc) + timedelta(seconds=1))
        return "after the request in flight"
    return hook
