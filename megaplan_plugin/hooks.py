"""The plugin's hook implementations: thin, they validate, record and enqueue.

None of them may raise into the host (pluggy would skip the other plugins), so each catches,
logs and keeps what it could not hand on: a call that cannot be queued is kept in the database
and queued later by the sweeper.
"""
from __future__ import annotations

import dataclasses
import functools
import logging

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from . import DESCRIPTION, KEY, TITLE
from . import queue as queues
from .cabinet import PluginInfo, hookimpl
from .models import CallLog, DeferredEvent
from .outbox import insert_call

log = logging.getLogger(__name__)


def never_raise(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception:
            log.exception("megaplan: %s failed", func.__name__)
            return None
    return wrapper


@hookimpl
def cabinet_plugin_info():
    return PluginInfo(key=KEY, title=TITLE, description=DESCRIPTION,
                      settings_endpoint="megaplan.settings")


@hookimpl
def cabinet_init_app(app, host):
    from .setup import init_app
    init_app(app, host)


def _wanted(host, account_id: str, virtual_number: str | None) -> bool:
    """Inactive integration or a filtered-out number: nothing recorded, nothing queued."""
    return current_app.extensions["megaplan"].hook_settings.get(host.db, account_id).wants(virtual_number)


@hookimpl
@never_raise
def call_started(host, event):
    if _wanted(host, event.account_id, event.virtual_number):
        _enqueue_live(host, "call_started", event)


@hookimpl
@never_raise
def call_answered(host, event):
    if _wanted(host, event.account_id, event.virtual_number):
        _enqueue_live(host, "call_answered", event)


@hookimpl
@never_raise
def call_ended(host, record):
    if not _wanted(host, record.account_id, record.virtual_number):
        return
    db = host.db
    data = _as_dict(record)
    try:
        row_id = insert_call(db, data)
    except SQLAlchemyError:
        # The database is down: Redis carries the whole record until a job can store it.
        log.warning("megaplan: database unavailable, call %s handed to Redis", record.call_id)
        queues.enqueue_store(data)
        return
    if row_id is None:
        return  # the PBX repeated the push; the first one is already in the outbox
    try:
        queues.enqueue_sync(row_id, fresh=True)
    except RedisError:
        log.warning("megaplan: Redis unavailable, call %s stays in the outbox", record.call_id)
        # Stored as enqueued to save a commit on the usual path; undo that so the sweeper sends it.
        db.session.execute(db.update(CallLog).where(CallLog.id == row_id).values(enqueued_at=None))
        db.session.commit()


@hookimpl
@never_raise
def route_request(host, event):
    from .routing import route_for
    return route_for(host, event)


def _enqueue_live(host, hook: str, event) -> None:
    payload = _as_dict(event)
    try:
        queues.enqueue_live(event.account_id, event.call_id, hook, payload)
    except RedisError:
        log.warning("megaplan: Redis unavailable, %s of call %s deferred", hook, event.call_id)
        db = host.db
        db.session.add(DeferredEvent(account_id=event.account_id, call_id=event.call_id,
                                     hook=hook, payload=payload))
        db.session.commit()


def _as_dict(value) -> dict:
    """Hook values as JSON-ready dicts: the plugin must not depend on the host's classes."""
    return {key: item.isoformat() if hasattr(item, "isoformat") else item
            for key, item in dataclasses.asdict(value).items()}
