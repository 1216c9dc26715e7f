"""RQ jobs that keep the plugin's local knowledge fresh and close gaps, on schedule or on demand.

The client index, callUserConfig records, a number's route asked of Megaplan in the
background, the outbox sweep and reconciliation with the PBX history. Each is idempotent and
guards against overlapping runs where two could collide; each commits once.

:func:`schedule` is the one list of periodic work: ``rq cron
megaplan_plugin.delivery.cron_config`` registers it with RQ's cron scheduler in production,
the embedded mode's cron thread (``embedded.py``) with its own.
"""
from __future__ import annotations

import contextlib
import os
from datetime import datetime

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import clients, deals, employees
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.calls.routing import remember_route
from megaplan_plugin.calls.rules import ACTIVE, active
from megaplan_plugin.delivery import outbox, queues
from megaplan_plugin.delivery.worker import with_app_context
from megaplan_plugin.delivery.reconcile import EVERY_SECONDS as RECONCILE_EVERY_SECONDS, reconcile_account, reconcile_all
from megaplan_plugin.models import Credential, Settings


def _redis():
    return current_app.extensions["megaplan"].redis


@contextlib.contextmanager
def _once(conn, name: str, seconds: int):
    """Run a periodic job's body only if no other run of it is in progress, in any process."""
    lock = conn.lock(f"megaplan:lock:periodic:{name}", timeout=seconds)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(LockError):
                lock.release()


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
    """Read the credential's Megaplan clients into the local index, with the employees (their
    absences) and, for accounts that use them, the open deals (activation, periodically)."""
    db = cabinet.db()
    credential = db.session.get(Credential, credential_id)
    if credential is None:
        return "gone"
    with _once(_redis(), f"index:{credential_id}", 3600) as mine:
        if not mine:
            return "another run is indexing"
        client = client_for(credential)
        count = clients.rebuild(db.session, client, credential_id)
        db.session.commit()
        # read first, then write and commit at once: no request while the rows are locked
        directory = employees.fetch_directory(client)
        found = list(client.open_deals()) if deals.credential_wants(db.session, credential_id) else []
        employees.store_directory(credential, directory)
        open_deals = deals.replace(db.session, credential_id, found)
        db.session.commit()
    return f"indexed {count} clients, {open_deals} open deals"


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
    with _once(_redis(), "sweep", 600) as mine:
        return outbox.sweep(cabinet.db()) if mine else {"skipped": "another sweep is running"}


@with_app_context
def reconcile() -> dict:
    """Periodic: put calls the PBX history has and the plugin never received into the outbox
    (``flask megaplan reconcile --since`` runs ``reconcile_all`` for a chosen window)."""
    with _once(_redis(), "reconcile", 600) as mine:
        if not mine:
            return {"skipped": "another reconciliation is running"}
        return reconcile_all(cabinet.host())


@with_app_context
def reconcile_window(account_id: str, since: str, until: str) -> int:
    """Reconcile one account over ``since``..``until`` (ISO times), leaving its periodic
    window where it is: «Передать звонки за время отключения»."""
    settings = cabinet.db().session.get(Settings, account_id)
    if not active(settings) or not hasattr(cabinet.host().pbx, "history"):
        return 0
    return reconcile_account(cabinet.host(), settings, datetime.fromisoformat(since),
                             datetime.fromisoformat(until), advance=False)


def sweep_every_seconds() -> int:
    """How often every account with waiting calls gets its writer woken (default a minute;
    ``MEGAPLAN_SWEEP_SECONDS`` for fault runs that cannot wait)."""
    return max(1, int(os.environ.get("MEGAPLAN_SWEEP_SECONDS") or 60))


def schedule() -> list[dict]:
    common = dict(queue_name=queues.SYNC_QUEUE, result_ttl=600, failure_ttl=24 * 3600)
    return [dict(func=sweep, interval=sweep_every_seconds(), **common),
            dict(func=reconcile, interval=RECONCILE_EVERY_SECONDS, **common),
            dict(func=index_all, interval=3600, **common)]
