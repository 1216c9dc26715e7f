"""The PBX's own record of finished calls: what its ``history`` REST command would return.

A real PBX keeps every call whether or not its push reached the cabinet; the stub keeps the
same here, written before the push is (maybe) lost, so reconciliation has something to find.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, String, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .db import db
from .types import CallRecord


class PbxCall(db.Model):
    __tablename__ = "cabinet_pbx_call"
    __table_args__ = (UniqueConstraint("account_id", "call_id"),
                      Index("ix_cabinet_pbx_call_ended", "account_id", "ended_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record: Mapped[dict] = mapped_column(JSON)


def log_call(record: CallRecord, ended_at: datetime) -> None:
    """Keep a finished call; a repeated ``history`` push of the same call keeps the first,
    also when the repeats arrive at once (the unique key decides, not a look first)."""
    try:
        with db.session.begin_nested():
            db.session.add(PbxCall(account_id=record.account_id, call_id=record.call_id,
                                   ended_at=ended_at, record=record.to_dict()))
    except IntegrityError:
        pass  # the same call, kept by the push that came first
    db.session.commit()


def calls_between(account_id: str, since: datetime, until: datetime) -> list[CallRecord]:
    rows = db.session.execute(db.select(PbxCall.record).where(
        PbxCall.account_id == account_id, PbxCall.ended_at >= since, PbxCall.ended_at < until)
        .order_by(PbxCall.ended_at)).scalars()
    return [CallRecord.from_dict(row) for row in rows]
