"""What the PBX itself knows, kept apart from the cabinet's database.

A real MegaFon PBX owns its employees, its virtual numbers, the CRM token it pushes with and
the history of every call, whether or not a push reached the cabinet. The stub keeps the same
in a store of its own (``PBX_DATABASE_URL``, by default an SQLite file in the instance
folder), so that with the cabinet's database down the PBX still checks a push's token, still
records the call, and ``host.pbx.history`` still answers for reconciliation afterwards.

SQLAlchemy Core on an engine of its own: nothing here shares a session or a transaction with
the cabinet's ``db``, so a failure there cannot roll back what the PBX recorded.
"""
from __future__ import annotations

from datetime import datetime

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .db import sqlite_pragmas
from .types import CallRecord, PbxUser

metadata = sa.MetaData()

accounts = sa.Table(
    "pbx_account", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # Set by the cabinet admin on both sides («Ключ для авторизации» in the MegaFon cabinet).
    sa.Column("crm_token", sa.String(128), nullable=False))

users = sa.Table(
    "pbx_user", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("login", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("ext", sa.String(16)),
    sa.Column("telnum", sa.String(16)),
    sa.UniqueConstraint("account", "login"))

numbers = sa.Table(
    "pbx_number", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("number", sa.String(16), nullable=False),
    sa.UniqueConstraint("account", "number"))

calls = sa.Table(
    "pbx_call", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
    sa.UniqueConstraint("account", "call_id"),
    sa.Index("ix_pbx_call_ended", "account", "ended_at"))


class PbxStore:
    def __init__(self, url: str):
        self.engine = sa.create_engine(url, pool_recycle=300)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
        # Processes starting at once on a fresh store race to create its tables: create_all
        # skips what exists, so whoever loses a race tries again and finds the rest made
        # (a single retry was not enough with three: the third may be midway).
        for attempt in range(20):
            try:
                metadata.create_all(self.engine)
                break
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt == 19:
                    raise
                time.sleep(0.05)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- the directory ------------------------------------------------------------------------
    def add_account(self, name: str, crm_token: str, employees: list[PbxUser],
                    virtual_numbers: list[str]) -> bool:
        """A new PBX customer; False when the name is taken (another process seeded first)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(accounts.insert().values(name=name, crm_token=crm_token))
                if employees:
                    conn.execute(users.insert(), [dict(account=name, login=u.login, name=u.name,
                                                       ext=u.ext, telnum=u.telnum) for u in employees])
                if virtual_numbers:
                    conn.execute(numbers.insert(), [dict(account=name, number=n) for n in virtual_numbers])
        except IntegrityError:
            return False
        return True

    def crm_token(self, account: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(accounts.c.crm_token).where(accounts.c.name == account))

    def users(self, account: str) -> list[PbxUser]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users.c.login, users.c.name, users.c.ext, users.c.telnum)
                                .where(users.c.account == account).order_by(users.c.ext, users.c.login))
            return [PbxUser(*row) for row in rows]

    def set_direct_number(self, account: str, login: str, telnum: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(users.update().where(users.c.account == account, users.c.login == login)
                         .values(telnum=telnum))

    def virtual_numbers(self, account: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(numbers.c.number).where(numbers.c.account == account)
                                     .order_by(numbers.c.number)))

    # -- the call history ---------------------------------------------------------------------
    def log_call(self, record: CallRecord, ended_at: datetime) -> None:
        """Keep a finished call; a repeated ``history`` push of the same call keeps the first,
        also when the repeats arrive at once (the unique key decides, not a look first)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(calls.insert().values(account=record.account_id, call_id=record.call_id,
                                                   ended_at=ended_at, record=record.to_dict()))
        except IntegrityError:
            pass  # the same call, kept by the push that came first

    def calls_between(self, account: str, since: datetime, until: datetime) -> list[CallRecord]:
        with self.engine.connect() as conn:
            rows = conn.scalars(sa.select(calls.c.record).where(
                calls.c.account == account, calls.c.ended_at >= since, calls.c.ended_at < until)
                .order_by(calls.c.ended_at))
            return [CallRecord.from_dict(row) for row in rows]

    def count_calls(self, account: str, call_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(calls).where(
                calls.c.account == account, calls.c.call_id == call_id))

