"""RQ jobs that keep the plugin's local knowledge fresh and close gaps, on schedule or on demand.

The client index, callUserConfig records, a number's route asked of Megaplan in the
background, the outbox sweep and reconciliation with the PBX history. Each is idempotent and
guards against overlapping runs where two could collide; each commits once.
"""
from __future__ import annotations


from flask import current_app
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import client_index, employees
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.calls.routing import remember_route
from megaplan_plugin.calls.rules import ACTIVE, active
from megaplan_plugin.delivery import locks, outbox, queues
from megaplan_plugin.delivery.worker import with_app_context
from megaplan_plugin.delivery.reconcile import reconcile_all
from megaplan_plugin.models import Credential, Settings


def _redis():
    return current_app.extensions["megaplan"].redis


@with_app_context
def refresh_route(account_id: str, phone: str) -> str:
    """Ask Megaplan whose client a number is, without the PBX waiting (after a slow route)."""
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    if not active(settings):
        return "skipped"
    client = client_for(db.session.get(Credential, settings.credential_id))
    remember_route(db.session, settings.credential_id, phone, client.call_route(phone))
    db.session.commit()
    current_app.extensions["megaplan"].routes.forget(account_id)
    return "remembered"


@with_app_context
def index_clients(credential_id: int) -> str:
    """Read the credential's Megaplan clients into the local index (activation, periodically)."""
    db = cabinet.db()
    credential = db.session.get(Credential, credential_id)
    if credential is None:
        return "gone"
    with locks.once(_redis(), f"index:{credential_id}", 3600) as mine:
        if not mine:
            return "another run is indexing"
        count = client_index.rebuild(db.session, client_for(credential), credential_id)
        db.session.commit()
    return f"indexed {count} clients"


@with_app_context
def write_call_user_configs(account_id: str) -> str:
    """Create in Megaplan the callUserConfig records of the account's hand-made links."""
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    if not active(settings):
        return "skipped"
    created = employees.create_missing_configs(account_id, db.session.get(Credential, settings.credential_id))
    db.session.commit()
    current_app.extensions["megaplan"].routes.forget(account_id)
    return f"created {created}"


@with_app_context
def index_all() -> int:
    """Periodic: refresh the index of every credential an active integration uses."""
    credential_ids = set(cabinet.db().session.execute(select(Settings.credential_id).where(
        *ACTIVE)).scalars())
    for credential_id in credential_ids:
        queues.enqueue_index(credential_id)
    return len(credential_ids)


@with_app_context
def sweep() -> dict:
    """Periodic: wake the writer of every account with waiting calls (see ``outbox.sweep``)."""
    with locks.once(_redis(), "sweep", 600) as mine:
        return outbox.sweep(cabinet.db()) if mine else {"skipped": "another sweep is running"}


@with_app_context
def reconcile() -> dict:
    """Periodic: put calls the PBX history has and the plugin never received into the outbox
    (``flask megaplan reconcile --since`` runs ``reconcile_all`` for a chosen window)."""
    with locks.once(_redis(), "reconcile", 600) as mine:
        if not mine:
            return {"skipped": "another reconciliation is running"}
        return reconcile_all(cabinet.host())
