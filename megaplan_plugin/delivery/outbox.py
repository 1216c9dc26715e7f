"""The outbox table's writes: store first, send later, and the sweep that closes the gaps.

Every durable piece of work for Megaplan is a row of ``megaplan_outbox`` (``OutboxEntry``) before
anything is queued. Finished calls wait there for their account's writer (``writer.py``);
:func:`sweep`, which the cron schedule runs, wakes the writer of every account that has
waiting calls and replays popups that could not be queued. It does not ask Redis what it
remembers: whatever Redis lost, every waiting call is on its way after one sweep.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from rq.registry import StartedJobRegistry
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from megaplan_plugin.models import OutboxEntry, aware, utcnow
from megaplan_plugin.calls import callbacks, ratings
from megaplan_plugin.calls.rules import INACTIVE_REASON
from megaplan_plugin.delivery import queues

log = logging.getLogger(__name__)

_INSERT = insert(OutboxEntry).returning(OutboxEntry.id)


class DatabaseDown(Exception):
    """The database cannot be reached (as opposed to refusing the data)."""


def as_dict(value) -> dict:
    """Hook values as JSON-ready dicts: the plugin must not depend on the host's classes.

    Every hook value passes here first, so this is where text that no UTF-8 can carry (a lone
    surrogate, which another host's door may let through) becomes U+FFFD: neither the
    database nor Megaplan ever sees one."""
    return {key: item.isoformat() if hasattr(item, "isoformat") else _utf8(item)
            for key, item in dataclasses.asdict(value).items()}


def _utf8(item):
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            return item.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return item
    if isinstance(item, dict):
        return {key: _utf8(value) for key, value in item.items()}
    if isinstance(item, (list, tuple)):
        return [_utf8(value) for value in item]
    return item


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
    return insert_row(engine, row_values(record))


def store_rating(engine, account_id: str, call_id: str, score: int) -> bool:
    """Keep a customer's score in its own autocommitted statement, as ``insert_row`` does a
    call; False when the call has one already. Raises ``DatabaseDown``."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return ratings.receive(conn, account_id, call_id, score)
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseDown(str(exc.orig or exc)) from exc


def skipped_while_inactive(account_id: str, since: datetime):
    """The account's calls not sent because the integration was off, since ``since``: those
    that ended (were stored) since then, whenever they began."""
    return select(OutboxEntry).where(
        OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL,
        OutboxEntry.state == OutboxEntry.SKIPPED, OutboxEntry.reason == INACTIVE_REASON,
        OutboxEntry.created_at >= since)


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
    """Wake the writer of every account with waiting calls; replay popups kept aside.

    The accounts come from the ``ix_megaplan_outbox_work`` index one seek each (a loose index
    scan), so a sweep costs as many steps as there are accounts with work, however many calls
    wait. A writer that is already queued or running makes the wake-up a no-op for its turn.
    Abandoned jobs (their worker died) are RQ's business: its registry cleanup handles them.
    """
    conn = queues.connection()
    counts = {"accounts": 0, "popups": 0, "stale_popups": 0, "abandoned": 0, "copies": 0}
    for name in queues.QUEUES:
        registry = StartedJobRegistry(name, connection=conn)
        counts["abandoned"] += len(registry.get_expired_job_ids())
        registry.cleanup()
    accounts = accounts_to_wake(db.session)
    queues.wake_writers(accounts, conn)
    counts["accounts"] = len(accounts)
    copies = copies_overdue(db.session)
    for row_id in copies:
        queues.enqueue_copy(row_id, conn=conn)
    counts["copies"] = len(copies)
    now = utcnow()
    popups = db.session.execute(select(OutboxEntry.id).where(
        OutboxEntry.kind == OutboxEntry.POPUP, OutboxEntry.state == OutboxEntry.PENDING)).scalars().all()
    for row_id in popups:
        counts[_replay_popup(db, row_id, now)] += 1
    db.session.commit()
    return counts


# A recording copy whose job should have run by now: Redis lost it, or its worker died.
COPY_OVERDUE = timedelta(minutes=5)


def copies_overdue(session) -> list[int]:
    """Rows owing a recording copy (delivery/recording_copy.py) whose job is late."""
    return list(session.execute(select(OutboxEntry.id).where(
        OutboxEntry.copy_state == OutboxEntry.COPY_PENDING,
        OutboxEntry.copy_next_at < utcnow() - COPY_OVERDUE).limit(500)).scalars())


def accounts_to_wake(session) -> list[str]:
    """Accounts whose writer has work: waiting calls, a callback past its deadline, or a
    customer's rating to add to a written call."""
    return sorted(set(accounts_with_work(session)) | set(callbacks.accounts_overdue(session, utcnow()))
                  | set(ratings.accounts_waiting(session)))


def accounts_with_work(session) -> list[str]:
    """Accounts with calls waiting for Megaplan, by a loose scan of ``ix_megaplan_outbox_work``."""
    return [a for a in session.execute(_ACCOUNTS_WITH_WORK).scalars() if a is not None]


# Each step asks the index for the next account after the last one: O(accounts), not O(rows).
_ACCOUNTS_WITH_WORK = text("""
WITH RECURSIVE a(account_id) AS (
  SELECT min(account_id) FROM megaplan_outbox WHERE kind = 'call' AND state = 'pending'
  UNION ALL
  SELECT (SELECT min(o.account_id) FROM megaplan_outbox o
          WHERE o.kind = 'call' AND o.state = 'pending' AND o.account_id > a.account_id)
  FROM a WHERE a.account_id IS NOT NULL
)
SELECT account_id FROM a""")


def _replay_popup(db, row_id: int, now: datetime) -> str:
    row = db.session.get(OutboxEntry, row_id)
    if now - aware(row.created_at) > queues.POPUP_MAX_AGE:
        row.state, row.reason = OutboxEntry.SKIPPED, "всплывающее окно устарело, пока Redis был недоступен"
        return "stale_popups"
    queues.enqueue_live(row.record["event"], row.record["hook"])
    row.state = OutboxEntry.SENT
    return "popups"
