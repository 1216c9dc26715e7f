"""One writer per account: every finished call reaches Megaplan through its account's writer.

The hook stores the call and wakes the writer (``queues.wake_writer``). The writer takes the
account's lock without waiting (another writer of the account sees the new calls), drains the
due calls oldest first for a bounded slice, and queues itself again at the back if calls are
left: accounts take turns. Known clients' calls go together (``POST /callInfo/history``), the
others one by one (``sync_unit.py``); each call's outcome is committed on its own. Nothing
trusts Redis to remember: a lost writer job is replaced by the next sweep.
"""
from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta

from flask import current_app
from redis.exceptions import LockError, RedisError
from sqlalchemy import or_, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls.connection import client_for, side_engine
from megaplan_plugin.calls.clients import display_name
from megaplan_plugin.calls import callbacks, ratings
from megaplan_plugin.calls.rules import active, not_for_megaplan
from megaplan_plugin.delivery import intents, outbox, outcomes, queues, recording_copy
from megaplan_plugin.delivery.sync_unit import CallSync, Planned, Written
from megaplan_plugin.delivery.worker import with_app_context
from megaplan_plugin.megaplan import MegaplanError
from megaplan_plugin.models import Callback, CallRating, Credential, OutboxEntry, Settings, aware, utcnow

log = logging.getLogger(__name__)

SLICE_CALLS = 100       # one history batch
SLICE_SECONDS = 5.0     # then the other accounts' writers get their turn
# The account lock outlives a slice's slowest call (a few requests of up to 15 s); it is
# extended after every call, and frees itself this long after a writer was killed.
LOCK_SECONDS = 60
# Calls due within this get a writer scheduled for them; later ones are left to the sweep.
SCHEDULE_AHEAD = timedelta(minutes=2)
RATINGS_PER_TURN = 50   # late ratings added per turn (one comment each)


@with_app_context
def write_account(account_id: str) -> str:
    conn = current_app.extensions["megaplan"].redis
    conn.delete(queues.wake_key(account_id))  # calls stored from now on wake the next writer
    lock = conn.lock(queues.writer_lock_key(account_id), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return "another writer of the account is running"  # it looks for due calls when done
    try:
        outcome, pause = _drain(account_id, lock)
        if pause is None:
            pause = _escalate(account_id)
        if pause is None:
            pause = _late_ratings(account_id)
    finally:
        with contextlib.suppress(LockError):
            lock.release()
    _next_turn(account_id, pause)
    return outcome


def _due(account_id: str, now) -> list:
    """The account's waiting calls whose time has come (``now`` None: all waiting calls)."""
    waiting = [OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == account_id,
               OutboxEntry.state == OutboxEntry.PENDING]
    if now is None:
        return waiting
    return waiting + [or_(OutboxEntry.next_retry_at.is_(None), OutboxEntry.next_retry_at <= now)]


def _drain(account_id: str, lock) -> tuple[str, int | None]:
    """Write a slice of the account's due calls; returns (what happened, seconds to pause
    before the next writer when Megaplan asked for it)."""
    db = cabinet.db()
    session = db.session
    rows = session.execute(select(OutboxEntry).where(*_due(account_id, utcnow()))
                           .order_by(OutboxEntry.started_at).limit(SLICE_CALLS)).scalars().all()
    if not rows:
        return "nothing due", None
    settings = session.get(Settings, account_id)
    gated = {row.id: not_for_megaplan(settings, row.virtual_number) for row in rows}
    for row in rows:
        if gated[row.id]:
            outcomes.record(row, OutboxEntry.SKIPPED, reason=gated[row.id])
    rows = [row for row in rows if not gated[row.id]]
    session.commit()
    if not rows:
        return "skipped", None
    unit = CallSync(session, side_engine(), cabinet.host(),
                    client_for(session.get(Credential, settings.credential_id)), settings,
                    public_url=current_app.config["MEGAPLAN_PUBLIC_URL"])
    started = time.monotonic()
    try:
        batch, single = unit.plan(rows)
        if batch:
            single = _write_batch(unit, batch) + single
        for planned in single:
            if time.monotonic() - started > SLICE_SECONDS:
                break
            _write_one(unit, planned)
            try:
                lock.reacquire()  # another minute: this writer is alive
            except LockError:
                break  # a call outlasted the lock: another writer may have started
    except _Pause as pause:
        return "paused", pause.seconds
    return f"wrote {len(rows)}", None


class _Pause(Exception):
    """Megaplan is failing or asks to wait: the slice ends, the calls keep their schedule."""

    def __init__(self, seconds: int | None):
        self.seconds = seconds


def _write_batch(unit: CallSync, batch: list[Planned]) -> list[Planned]:
    """The batch's calls written; returns those left for one by one."""
    try:
        written, rest = unit.write_batch(batch)
    except MegaplanError as exc:
        if not exc.transient and len(batch) > 1:
            # One of them may be what Megaplan refuses: each goes alone, to find out which.
            log.warning("megaplan: a history batch of %d calls was refused (%s); sending them one by one",
                        len(batch), exc)
            return batch
        for planned in batch:
            retry = _failed(planned, exc)
        unit.session.commit()
        if exc.transient:
            raise _Pause(retry) from None
        return []
    for planned, call in written:
        if callbacks.is_missed(planned.row):  # a miss with no todo wanted: the callback is local
            unit.record_missed(planned.row)
        _sent(planned, Written(call, planned.contractor), unit.settings)
    unit.session.commit()
    _queue_copies([planned.row for planned, _ in written])
    return rest


def _write_one(unit: CallSync, planned: Planned) -> None:
    row = planned.row
    try:
        written = unit.write_one(planned)
    except intents.Busy as busy:
        # A popup job has a request on this call in flight: after it, or after its lease.
        row.next_retry_at = (busy.until or utcnow()) + timedelta(seconds=1)
        unit.session.commit()
        return
    except Exception as exc:
        if not isinstance(exc, MegaplanError):  # a defect or an outage of ours (database, Redis)
            log.exception("megaplan: sync of call %s failed", row.call_id)
        unit.session.rollback()  # callbacks marked closed before the failure are not
        retry = _failed(planned, exc)
        unit.session.commit()
        if _transient(exc):
            raise _Pause(retry) from None
        return
    unit.index(written)
    row.callback_todo_id = written.todo_id or row.callback_todo_id
    _sent(planned, written, unit.settings)
    unit.session.commit()
    _queue_copies([row])


def _escalate(account_id: str) -> int | None:
    """Hand on the account's callbacks past their deadline (calls/callbacks.py), each committed
    on its own; returns the seconds to pause when Megaplan is failing."""
    session = cabinet.db().session
    now = utcnow()
    due = callbacks.overdue(session, account_id, now)

    def refused(callback):  # refused for good: marked, not retried
        callbacks.mark_escalated(session, session.get(Callback, callback.id), now, None)
    return _one_by_one(account_id, due, "escalation of callback {0.id}", refused, lambda client, settings, callback:
                       callbacks.escalate(session, client, side_engine(), settings, callback, now))


def _late_ratings(account_id: str) -> int | None:
    """Customers' scores that came after their call was written, added to its communication
    (calls/ratings.py), each committed on its own; returns the seconds to pause when Megaplan
    is failing, 0 when more are waiting than one turn takes."""
    session = cabinet.db().session
    waiting = ratings.waiting(session, account_id, RATINGS_PER_TURN)

    def refused(item):  # the todo is gone: the score stays in the journal only
        session.get(CallRating, (item[0].account_id, item[0].call_id)).noted_at = utcnow()
    pause = _one_by_one(account_id, waiting, "the rating of call {0[1].call_id}", refused, lambda client, _, item:
                        ratings.add_late(session, client, side_engine(), *item))
    return 0 if pause is None and len(waiting) == RATINGS_PER_TURN else pause


def _one_by_one(account_id: str, items: list, what: str, refused, act) -> int | None:
    """``act(client, settings, item)`` for each item, each committed on its own, while the
    account is active; a request refused for good gives ``refused(item)``. Returns the
    seconds to pause when Megaplan is failing or a request of an earlier try is in flight."""
    session = cabinet.db().session
    settings = session.get(Settings, account_id)
    if not items or not active(settings):
        session.rollback()
        return None
    client = client_for(session.get(Credential, settings.credential_id))
    for item in items:
        try:
            act(client, settings, item)
        except intents.Busy as busy:
            session.rollback()
            now = utcnow()
            return max(1, int(((busy.until or now) - now).total_seconds()) + 1)
        except MegaplanError as exc:
            session.rollback()
            log.warning("megaplan: %s failed: %s", what.format(item), outcomes.describe(exc))
            if exc.transient:
                return outcomes.next_try(1, getattr(exc, "retry_after", None))
            refused(item)
        session.commit()
    return None


def _sent(planned: Planned, written: Written, settings: Settings) -> None:
    row = planned.row
    recording_copy.wanted(settings, row)
    row.attempts += 1
    row.megaplan_call_id = str(written.call["id"])
    if written.contractor:
        row.client_name = display_name(written.contractor)[:300]
        row.contractor_id = str(written.contractor.get("id") or "")[:32] or None
    outcomes.record(row, OutboxEntry.SENT, reason="; ".join(n for n in planned.notes if n) or None)


def _queue_copies(rows: list[OutboxEntry]) -> None:
    """Recording copies owed by calls just written; without Redis the sweep queues them."""
    with contextlib.suppress(RedisError):
        for row in rows:
            if row.copy_state == recording_copy.PENDING:
                queues.enqueue_copy(row.id)


def _failed(planned: Planned, exc: BaseException) -> int | None:
    """Record a failed attempt; returns the seconds until the call's next one (None: no more)."""
    row = planned.row
    if planned.contractor:
        row.client_name = display_name(planned.contractor)[:300]
    row.attempts += 1
    retry = outcomes.next_try(row.attempts, getattr(exc, "retry_after", None)) if _transient(exc) else None
    outcomes.record(row, OutboxEntry.PENDING if retry is not None else OutboxEntry.FAILED,
                    error=outcomes.describe(exc), retry_in=retry)
    if isinstance(exc, MegaplanError):
        log.warning("megaplan: call %s attempt %d failed: %s", row.call_id, row.attempts,
                    outcomes.describe(exc))
    return retry


def _transient(exc: BaseException) -> bool:
    # Megaplan says; an outage of ours is; a record no try can write (a date at the edge) is not
    return getattr(exc, "transient", not isinstance(exc, (ValueError, OverflowError)))


def _next_turn(account_id: str, pause: int | None) -> None:
    """After the slice: queue the next writer at the back when calls are due, or for the time
    the first waiting call is due, when that is soon (later ones are the sweep's)."""
    now = utcnow()
    when = now + timedelta(seconds=pause) if pause is not None else None
    if pause is None:
        session = cabinet.db().session
        first = session.execute(select(OutboxEntry.next_retry_at).where(*_due(account_id, None))
                                .order_by(OutboxEntry.next_retry_at.asc().nulls_first()).limit(1)).first()
        deadline = callbacks.next_deadline(session, account_id)
        session.rollback()
        if first is None and deadline is None:
            return
        when = min(t for t in ((aware(first[0]) or now) if first else None, deadline) if t is not None)
    if when <= now:
        queues.wake_writer(account_id)
    elif when - now < SCHEDULE_AHEAD:
        queues.wake_writer(account_id, at=when)


@with_app_context
def store_call(record: dict) -> str:
    """A call the hook could not store (database down): stored now, and its writer woken.
    Raises while the database is still down, so RQ tries again."""
    if outbox.insert_call(cabinet.db().engine, record) is None:
        return "already stored"
    queues.wake_writer(record["account_id"])
    return "stored"


@with_app_context
def store_rating(account_id: str, call_id: str, score: int) -> str:
    """A customer's score the hook could not store (database down): stored now, and the
    writer woken. Raises while the database is still down, so RQ tries again."""
    if not outbox.store_rating(cabinet.db().engine, account_id, call_id, score):
        return "already stored"
    queues.wake_writer(account_id)
    return "stored"
