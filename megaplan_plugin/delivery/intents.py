"""A durable intent before every create that Megaplan cannot make idempotent.

CallInfo, clients and todos have no idempotency key on Megaplan's side, so a create whose
answer is lost may or may not have happened. A row of ``megaplan_intent`` is committed before
the create and the Megaplan id after the answer. No row: nothing was ever sent, create at once.
A row with an id: it exists. A row without one: look it up before creating anything.

``busy_until`` is a lease: its holder may have a request in flight, nobody else sends one until
it is given back (an answer came) or runs out (Megaplan may still be working on it).
``finished``, taken with the lease by the history writer, keeps popup jobs off the call. Every
statement commits on a connection of its own, before the request it guards.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from megaplan_plugin.megaplan import MegaplanError
from megaplan_plugin.models import Intent, aware, utcnow

# Longer than any one request a holder makes (connect 3 s + read 15 s, a token refresh first):
# a lease that runs out without an answer means the request is over on Megaplan's side too.
LEASE = timedelta(seconds=60)


class Busy(Exception):
    """Another job may have a request on this entity in flight; come back after ``until``."""

    def __init__(self, until: datetime | None):
        super().__init__(f"busy until {until}")
        self.until = until


class Finished(Exception):
    """The call's history is being written: popup jobs leave it alone."""


@dataclass
class Claim:
    """The lease on one intent. ``fresh``: the row was made just now, so nothing was ever sent."""

    engine: object
    id: int
    fresh: bool
    megaplan_id: str | None = None
    megaplan_type: str | None = None
    released: bool = False

    def record(self, megaplan_id, megaplan_type: str | None = None) -> None:
        """The entity exists in Megaplan under this id: written down and the lease given back."""
        self.megaplan_type = megaplan_type
        record_many(self.engine, [(self, megaplan_id)])

    def release(self) -> None:
        if not self.released:
            release_many(self.engine, [self])


def _execute(engine, statement, parameters=None):
    """One statement, committed at once: its rows (RETURNING) or how many rows it changed."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        result = conn.execute(statement, parameters)
        return result.all() if result.returns_rows else result.rowcount


def _key(account_id: str, kind: str, key: str):
    return and_(Intent.account_id == account_id, Intent.kind == kind, Intent.key == key)


def claim(engine, account_id: str, kind: str, key: str, *, finish: bool = False,
          live: bool = False) -> Claim:
    """Take the lease on an intent, making the row if there is none.

    ``finish`` (the history writer) marks the call finished with the lease; ``live`` (a popup
    job) refuses a finished call with ``Finished``. A lease held by someone else: ``Busy``.
    """
    now = utcnow()
    until = now + LEASE
    try:
        row_id = _execute(engine, insert(Intent).values(
            account_id=account_id, kind=kind, key=key, busy_until=until, finished=finish,
            created_at=now).returning(Intent.id))[0].id
        return Claim(engine, row_id, fresh=True)
    except IntegrityError:
        pass
    free = or_(Intent.busy_until.is_(None), Intent.busy_until < now)
    conditions = [_key(account_id, kind, key), free]
    values = {"busy_until": until}
    if finish:
        values["finished"] = True
    if live:
        conditions.append(Intent.finished.is_(False))
    taken = _execute(engine, update(Intent).where(*conditions).values(**values))
    with engine.connect() as conn:
        row = conn.execute(select(Intent.id, Intent.megaplan_id, Intent.megaplan_type, Intent.busy_until,
                                  Intent.finished).where(_key(account_id, kind, key))).one()
    if taken:
        return Claim(engine, row.id, fresh=False, megaplan_id=row.megaplan_id,
                     megaplan_type=row.megaplan_type)
    if live and row.finished:
        raise Finished(key)
    raise Busy(aware(row.busy_until))


def claim_many(engine, account_id: str, kind: str, keys: list[str]) -> dict[str, Claim]:
    """Fresh claims (``finish``) for those of ``keys`` that have no intent yet, in one
    statement; the others are left to :func:`claim` one by one."""
    if not keys:
        return {}
    now = utcnow()
    rows = [dict(account_id=account_id, kind=kind, key=k, busy_until=now + LEASE, finished=True,
                 created_at=now) for k in keys]
    dialect_insert = {"postgresql": postgresql_insert}.get(engine.dialect.name, sqlite_insert)
    made = _execute(engine, dialect_insert(Intent).values(rows).on_conflict_do_nothing()
                    .returning(Intent.id, Intent.key))
    return {row.key: Claim(engine, row.id, fresh=True) for row in made}


def record_many(engine, done: list[tuple[Claim, object]]) -> None:
    """``Claim.record`` of many in one round trip."""
    if done:
        _execute(engine, update(Intent).where(Intent.id == bindparam("intent_id")).values(
            megaplan_id=bindparam("mp_id"), megaplan_type=bindparam("mp_type"), busy_until=None),
            [{"intent_id": c.id, "mp_id": str(mp_id), "mp_type": c.megaplan_type} for c, mp_id in done])
    for claim, mp_id in done:
        claim.megaplan_id, claim.released = str(mp_id), True


def release_many(engine, claims: list[Claim], exc: BaseException | None = None) -> None:
    """Give the leases back, unless a request on them got no answer (``exc``): Megaplan may
    still be working on it, so the lease must run out first."""
    if claims and (exc is None or answered(exc)):
        _execute(engine, update(Intent).where(Intent.id.in_([c.id for c in claims])).values(busy_until=None))
        for claim in claims:
            claim.released = True


def answered(exc: BaseException) -> bool:
    """Whether the request is over on Megaplan's side: it answered (an error status other than
    a gateway's timeout), or our own code failed. A timeout or a lost connection leaves the
    request possibly in flight: its lease must run out first."""
    if isinstance(exc, MegaplanError):
        return exc.status is not None and exc.status != 504
    return True


@contextlib.contextmanager
def lease(engine, account_id: str, kind: str, key: str, *, finish: bool = False, live: bool = False):
    """``claim`` for the length of a ``with`` block: the lease is given back when the block
    ends, unless it ends with a request that got no answer."""
    held = claim(engine, account_id, kind, key, finish=finish, live=live)
    try:
        yield held
    except BaseException as exc:
        release_many(engine, [held], exc)
        raise
    held.release()


def call_of_megaplan_id(session, account_id: str, megaplan_call_id: str) -> str | None:
    """The PBX call id of a CallInfo the plugin created («Завершить» from the popup)."""
    return session.execute(select(Intent.key).where(
        Intent.account_id == account_id, Intent.kind == Intent.CALL,
        Intent.megaplan_id == megaplan_call_id)).scalars().first()


def made(session, account_id: str, kind: str, key: str) -> str | None:
    """The Megaplan id an intent recorded (the call's communication todo, …), if any."""
    return session.execute(select(Intent.megaplan_id).where(
        Intent.account_id == account_id, Intent.kind == kind, Intent.key == key)).scalar()
