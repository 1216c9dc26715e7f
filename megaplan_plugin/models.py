"""The plugin's own tables (prefix ``megaplan_``), mapped on the host's database.

The host owns the one flask-sqlalchemy ``db``; the plugin keeps its own ``MetaData`` so that it
needs nothing of the host at import time, hands the metadata to ``host.add_tables`` and works
through ``host.db.session``.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {datetime: DateTime(timezone=True)}


class CallLog(Base):
    """One row per PBX call: the outbox that holds the call until Megaplan confirmed it."""

    __tablename__ = "megaplan_call"
    __table_args__ = (
        UniqueConstraint("account_id", "call_id"),
        Index("ix_megaplan_call_state", "state", "updated_at"),
    )

    PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
    STATE_TITLES = {PENDING: "ожидает", SENT: "отправлен", FAILED: "ошибка", SKIPPED: "пропущен"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))
    client_phone: Mapped[str] = mapped_column(String(32))
    virtual_number: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    record: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    megaplan_call_id: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeferredEvent(Base):
    """A live call event (popup) that could not be queued because Redis was unreachable."""

    __tablename__ = "megaplan_deferred_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    hook: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
