"""The plugin's hook implementations: thin, they check, record and enqueue.

None of them may raise into the host (pluggy would skip the other plugins), so each catches,
logs and keeps what it could not hand on. A finished call is stored in the outbox before the
hook returns and its account's writer is woken (nothing to enqueue when one is waiting);
when the database is down, Redis carries the whole record to a job that stores it; when
Redis is down, the outbox row waits for the sweep. A popup that cannot be queued is an
outbox row too, replayed while it is still worth showing.
"""
from __future__ import annotations

import contextlib
import functools
import logging

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from megaplan_plugin import DESCRIPTION, KEY, TITLE
from megaplan_plugin.cabinet import PluginInfo, hookimpl
from megaplan_plugin.calls import ratings
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.outbox import (
    DatabaseDown,
    as_dict,
    insert_call,
    insert_refused,
    insert_row,
    row_values,
    store_rating,
)
from megaplan_plugin.models import OutboxEntry
from megaplan_plugin.calls.routing import route_for

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
    from megaplan_plugin.wiring import init_app  # wiring, not a dependency of the hooks themselves
    init_app(app, host)


def _why_not(host, account_id: str, virtual_number: str | None) -> str | None:
    """Why a call is not for Megaplan (inactive integration, a filtered-out number), or None.

    When the settings cannot be read (database down) the call is kept: the job that sends
    it applies the same rule once the database is back.
    """
    try:
        settings = current_app.extensions["megaplan"].hook_settings.get(host.db.engine, account_id)
    except (OperationalError, InterfaceError):
        return None
    return settings.why_not(virtual_number)


def _live_hook(name: str):
    """The hookimpl of one live event: ring, answer and transfer all become a popup update."""
    def hook(host, event):
        _live(host, name, event)
    hook.__name__ = hook.__qualname__ = name
    return hookimpl(never_raise(hook))


call_started = _live_hook("call_started")
call_answered = _live_hook("call_answered")
call_transferred = _live_hook("call_transferred")


@hookimpl
@never_raise
def call_ended(host, record):
    data = as_dict(record)
    reason = _why_not(host, record.account_id, record.virtual_number)
    if reason:
        # Nothing to send, but «почему звонок не попал в Мегаплан?» has an answer in the journal.
        with contextlib.suppress(DatabaseDown):
            insert_row(host.db.engine, row_values(data, state=OutboxEntry.SKIPPED, reason=reason))
        return
    try:
        row_id = insert_call(host.db.engine, data)
    except DatabaseDown:
        log.warning("megaplan: database unavailable, call %s handed to Redis", record.call_id)
        queues.enqueue_store(data)
        return
    except SQLAlchemyError as exc:
        # Not an outage: the database refused this record. A defect to fix, shown, never dropped.
        log.error("megaplan: call %r refused by the database: %s", record.call_id[:64],
                  type(exc).__name__)
        insert_refused(host.db.engine, data, exc)
        return
    if row_id is None:
        return  # the PBX repeated the push; the first one is already in the outbox
    try:
        queues.wake_writer(record.account_id)
    except RedisError:
        log.warning("megaplan: Redis unavailable, call %s waits in the outbox for the sweep", record.call_id)


@hookimpl(optionalhook=True)  # a cabinet of an earlier revision has no such hook: no error there
@never_raise
def call_rated(host, rating):
    """The customer's score of a call (contract revision 4): kept, and the writer woken to add
    it to the call's communication when the call is written already (calls/ratings.py)."""
    score = ratings.score_of(rating.score)
    if score is None:
        log.warning("megaplan: rating %r of call %s ignored: not a number", rating.score, rating.call_id[:64])
        return
    try:
        new = store_rating(host.db.engine, rating.account_id, rating.call_id, score)
    except DatabaseDown:
        log.warning("megaplan: database unavailable, rating of call %s handed to Redis", rating.call_id)
        queues.enqueue_store_rating(rating.account_id, rating.call_id, score)
        return
    if new:
        with contextlib.suppress(RedisError):  # else the sweep wakes the writer
            queues.wake_writer(rating.account_id)


@hookimpl
@never_raise
def route_request(host, event):
    return route_for(host, event)


def _live(host, hook: str, event) -> None:
    """A popup event: queued on megaplan-live, or kept in the outbox when Redis is down."""
    if _why_not(host, event.account_id, event.virtual_number):
        return
    payload = as_dict(event)
    try:
        queues.enqueue_live(payload, hook)
    except RedisError:
        log.warning("megaplan: Redis unavailable, %s of call %s kept in the outbox", hook, event.call_id)
        insert_row(host.db.engine, row_values(payload, OutboxEntry.POPUP, status=hook,
                                              record={"hook": hook, "event": payload}))

