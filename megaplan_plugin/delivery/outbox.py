"""The outbox table's writes: store first, send later, and the sweep that closes the gaps.

Every durable piece of work for Megaplan is a row of ``megaplan_outbox`` (``OutboxEntry``) before
anything is queued; a row whose job Redis lost (flush, restart without persistence, a popup
that could not be queued) is queued again by :func:`sweep`, which the cron schedule runs.
Abandoned jobs (their worker died) are RQ's business: its registry cleanup retries them.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone

from rq.registry import StartedJobRegistry
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from megaplan_plugin.models import OutboxEntry, utcnow
from megaplan_plugin.delivery import queues

log = logging.getLogger(__name__)

# A queued call whose job is gone from Redis this long is queued again; the sync job is
# idempotent, so an early resend costs a lookup, not a duplicate.
LOST_JOB_AFTER = timedelta(minutes=2)
SWEEP_BATCH = 1000

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
    """Queue again what the database holds and Redis does not; let RQ retry abandoned jobs."""
    conn = queues.connection()
    counts = {"calls": 0, "popups": 0, "stale_popups": 0, "abandoned": 0}
    for name in queues.QUEUES:
        registry = StartedJobRegistry(name, connection=conn)
        counts["abandoned"] += len(registry.get_expired_job_ids())
        registry.cleanup()
    now = utcnow()
    cutoff = now - LOST_JOB_AFTER
    last_id = 0
    while True:
        rows = db.session.execute(
            select(OutboxEntry.id, OutboxEntry.kind, OutboxEntry.account_id, OutboxEntry.call_id, OutboxEntry.created_at)
            .where(OutboxEntry.state == OutboxEntry.PENDING, OutboxEntry.id > last_id,
                   or_(OutboxEntry.enqueued_at.is_(None), OutboxEntry.enqueued_at < cutoff))
            .order_by(OutboxEntry.id).limit(SWEEP_BATCH)).all()
        if not rows:
            break
        last_id = rows[-1].id
        calls = [r for r in rows if r.kind == OutboxEntry.CALL]
        with conn.pipeline(transaction=False) as pipe:
            for row in calls:
                pipe.exists(f"rq:job:{queues.call_job_id(row.account_id, row.call_id)}")
            alive = pipe.execute()
        for row, exists in zip(calls, alive):
            if not exists:
                queues.enqueue_call(row.account_id, row.call_id, replace=True)
                counts["calls"] += 1
        if calls:  # looked at now: not again before LOST_JOB_AFTER
            db.session.execute(update(OutboxEntry).where(OutboxEntry.id.in_([r.id for r in calls]))
                               .values(enqueued_at=now))
        for row in rows:
            if row.kind == OutboxEntry.POPUP:
                counts[_replay_popup(db, row.id, now)] += 1
        db.session.commit()
    return counts


def _replay_popup(db, row_id: int, now: datetime) -> str:
    row = db.session.get(OutboxEntry, row_id)
    if now - aware(row.created_at) > queues.POPUP_MAX_AGE:
        row.state, row.reason = OutboxEntry.SKIPPED, "всплывающее окно устарело, пока Redis был недоступен"
        return "stale_popups"
    queues.enqueue_live(row.record["event"], row.record["hook"])
    row.state, row.enqueued_at = OutboxEntry.SENT, now
    return "popups"


def aware(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

