"""The outbox table's writes: store first, send later, and the sweep that closes the gaps.

Every durable piece of work for Megaplan is a row of ``megaplan_outbox`` (``OutboxEntry``) before
anything is queued; a row whose job Redis lost (flush, restart without persistence, a popup
that could not be queued) is queued again by :func:`sweep`, which the cron schedule runs.
Abandoned jobs (their worker died) are RQ's business: its registry cleanup retries them.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from redis.exceptions import ResponseError
from rq.registry import StartedJobRegistry
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from megaplan_plugin.models import OutboxEntry, aware, utcnow
from megaplan_plugin.delivery import queues

log = logging.getLogger(__name__)

# A queued call whose job is gone from Redis this long is queued again; the sync job is
# idempotent, so an early resend costs a lookup, not a duplicate.
LOST_JOB_AFTER = timedelta(minutes=2)
SWEEP_BATCH = 5000
# Set by a full sweep; gone when Redis lost its data, and after an hour in any case.
INTACT_KEY = "megaplan:sweep:intact"
FULL_SWEEP_EVERY = timedelta(hours=1)

_INSERT = insert(OutboxEntry).returning(OutboxEntry.id)


class DatabaseDown(Exception):
    """The database cannot be reached (as opposed to refusing the data)."""


def as_dict(value) -> dict:
    """Hook values as JSON-ready dicts: the plugin must not depend on the host's classes."""
    return {key: item.isoformat() if hasattr(item, "isoformat") else item
            for key, item in dataclasses.asdict(value).items()}


def row_values(value: dict, kind: str = OutboxEntry.CALL, **overrides) -> dict:
    """Outbox columns of a hook value given as a dict (a CallRecord or a CallEvent)."""
    values = dict(kind=kind, account_id=value["account_id"], call_id=value["call_id"],
                  direction=value["direction"], client_phone=value["client_phone"],
                  virtual_number=value.get("virtual_number"), status=value.get("status") or "",
                  started_at=datetime.fromisoformat(value.get("started_at") or value["at"]),
                  record=value)
    values.update(overrides)
    return values


def insert_row(engine, values: dict) -> int | None:
    """Insert one outbox row in its own autocommitted statement; None if it is there already.

    A connection of its own, not the host's session: the hook must not commit the host's
    work, and one statement is atomic anyway. Raises ``DatabaseDown`` when the database
    cannot be reached; any other database error is a defect and propagates.
    """
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(_INSERT, values).scalar_one()
    except IntegrityError:
        return None
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseDown(str(exc.orig or exc)) from exc


def insert_call(engine, record: dict) -> int | None:
    return insert_row(engine, row_values(record, enqueued_at=utcnow()))


def insert_refused(engine, record: dict, exc: Exception) -> None:
    """A journal row («ошибка») for a call the database would not store as it came."""
    def clean(value, size):
        return "".join(ch for ch in str(value or "") if ch.isprintable())[:size]
    values = row_values(record, state=OutboxEntry.FAILED, record={},
                        last_error=f"звонок не удалось сохранить ({type(exc).__name__}): данные АТС вне допустимого")
    for column, size in (("account_id", 64), ("call_id", 128), ("direction", 3),
                         ("client_phone", 32), ("virtual_number", 32), ("status", 16)):
        values[column] = clean(values[column], size)
    try:
        insert_row(engine, values)
    except Exception:
        log.exception("megaplan: could not record the refused call either")


def sweep(db) -> dict:
    """Queue again what the database holds and Redis does not; let RQ retry abandoned jobs.

    Jobs vanish when Redis loses its data (a restart without persistence, a flush, eviction),
    so every waiting row is compared with Redis only when Redis may have lost some
    (``INTACT_KEY`` gone, which it also is after ``FULL_SWEEP_EVERY``); otherwise only rows
    that were never queued are. Redis is asked in pipelines of ``SWEEP_BATCH``; only rows
    whose job is really gone are queued again and marked, so a sweep over a backlog of rows
    whose jobs are alive writes nothing.
    """
    conn = queues.connection()
    counts = {"calls": 0, "popups": 0, "stale_popups": 0, "abandoned": 0}
    for name in queues.QUEUES:
        registry = StartedJobRegistry(name, connection=conn)
        counts["abandoned"] += len(registry.get_expired_job_ids())
        registry.cleanup()
    now = utcnow()
    full = not conn.exists(INTACT_KEY)
    waiting = [OutboxEntry.state == OutboxEntry.PENDING]
    if full:
        waiting.append(or_(OutboxEntry.enqueued_at.is_(None), OutboxEntry.enqueued_at < now - LOST_JOB_AFTER))
    else:
        waiting.append(or_(OutboxEntry.enqueued_at.is_(None), OutboxEntry.kind == OutboxEntry.POPUP))
    rows = db.session.execute(select(OutboxEntry.id, OutboxEntry.kind, OutboxEntry.account_id,
                                     OutboxEntry.call_id).where(*waiting)).all()
    calls = [r for r in rows if r.kind == OutboxEntry.CALL]
    queued = []
    for start in range(0, len(calls), SWEEP_BATCH):
        batch = calls[start:start + SWEEP_BATCH]
        gone = [batch[i] for i in _missing(conn, [f"rq:job:{queues.call_job_id(r.account_id, r.call_id)}"
                                                 for r in batch])]
        for row in gone:  # no job of this id, just now: no uniqueness check needed
            queues.enqueue_call(row.account_id, row.call_id, fresh=True)
        queued += [row.id for row in gone]
    for start in range(0, len(queued), SWEEP_BATCH):
        db.session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(queued[start:start + SWEEP_BATCH]))
                           .values(enqueued_at=now).execution_options(synchronize_session=False))
    counts["calls"] = len(queued)
    for row in rows:
        if row.kind == OutboxEntry.POPUP:
            counts[_replay_popup(db, row.id, now)] += 1
    db.session.commit()
    if full:
        conn.set(INTACT_KEY, now.isoformat(), ex=int(FULL_SWEEP_EVERY.total_seconds()))
    return counts


# Which of KEYS do not exist: one command and a short answer for thousands of keys.
_MISSING = ("local gone = {} for i, key in ipairs(KEYS) do "
            "if redis.call('EXISTS', key) == 0 then gone[#gone + 1] = i - 1 end end return gone")


def _missing(conn, keys: list[str]) -> list[int]:
    """Indexes of ``keys`` that Redis does not hold."""
    try:
        return [int(i) for i in conn.eval(_MISSING, len(keys), *keys)]
    except (ResponseError, ImportError):  # fakeredis without a Lua runtime (the embedded mode)
        with conn.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return [i for i, alive in enumerate(pipe.execute()) if not alive]


def _replay_popup(db, row_id: int, now: datetime) -> str:
    row = db.session.get(OutboxEntry, row_id)
    if now - aware(row.created_at) > queues.POPUP_MAX_AGE:
        row.state, row.reason = OutboxEntry.SKIPPED, "всплывающее окно устарело, пока Redis был недоступен"
        return "stale_popups"
    queues.enqueue_live(row.record["event"], row.record["hook"])
    row.state, row.enqueued_at = OutboxEntry.SENT, now
    return "popups"
