"""«Перезвонить»: a missed call's callback todo closes itself once the number is reached.

When a later answered call (incoming or outgoing) with the same client number is synced,
every still-open callback todo of that number in the account is finished in Megaplan with a
comment naming the call that closed it. Helpers here never commit: the writer does, right
after the call that closed them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import OutboxEntry


def close_reached(session, client: MegaplanClient, row: OutboxEntry) -> list[OutboxEntry]:
    """Finish the open callback todos of ``row``'s number; returns the outbox rows closed."""
    open_rows = session.execute(select(OutboxEntry).where(
        *_still_open(row.account_id), OutboxEntry.client_phone == row.client_phone,
        OutboxEntry.id != row.id)).scalars().all()
    started = datetime.fromisoformat(row.record["started_at"]).strftime("%d.%m.%Y %H:%M")
    direction = "входящим" if row.direction == "in" else "исходящим"
    for missed in open_rows:
        client.finish_todo(missed.callback_todo_id)
        client.comment_todo(missed.callback_todo_id,
                            f"Закрыто автоматически: клиент дозвонился {direction} звонком "
                            f"{started} (UTC), звонок АТС {row.call_id}.")
        missed.callback_closed_by = row.call_id
    return open_rows


def numbers_with_open(session, account_id: str, numbers: list[str]) -> set[str]:
    """Which of ``numbers`` have a callback todo still open: an answered call of one of them
    has todos to close, so it is more than a history entry."""
    if not numbers:
        return set()
    return set(session.execute(select(OutboxEntry.client_phone).distinct().where(
        *_still_open(account_id), OutboxEntry.client_phone.in_(sorted(set(numbers))))).scalars())


def _still_open(account_id: str) -> tuple:
    """The account's missed calls whose callback todo nobody has closed yet."""
    return (OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == account_id,
            OutboxEntry.callback_todo_id.is_not(None), OutboxEntry.callback_closed_by.is_(None))
