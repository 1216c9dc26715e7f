"""The customer's rating of a call (the PBX's post-call survey), where a manager sees it.

The score comes with the ``history`` (``CallRecord.rating``) or after it (``cmd=rating``, the
``call_rated`` hook, contract revision 4); both end in ``megaplan_call_rating``, the first
score of a call being the one kept. A call written after its rating has the line
«Оценка клиента: 4 из 5» in its communication's description; a rating that comes after the
call was written is added to that communication as a comment, once (under an intent: the
comment is looked for before it is sent again). The journal shows it in its own column.
"""
from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from megaplan_plugin.calls.callbacks import commented
from megaplan_plugin.calls.rules import ACTIVE
from megaplan_plugin.delivery import intents
from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import CallRating, Intent, OutboxEntry, Settings, utcnow

# The survey's scale is not documented (the reference's only sample is «4»); MegaFon's survey
# scenarios offer 1 to 5. A score outside it is shown as it came, without «из 5».
SCALE = 5


def words(score: int) -> str:
    return f"Оценка клиента: {short(score)}"


def short(score: int) -> str:
    """«4 из 5», or the score as it came when it is off the scale."""
    return f"{score} из {SCALE}" if 1 <= score <= SCALE else str(score)


def score_of(value) -> int | None:
    """A score as the PBX sent it (an int, or text of one), or None."""
    try:
        return int(str(value).strip()) if value is not None and str(value).strip() else None
    except ValueError:
        return None


def receive(conn, account_id: str, call_id: str, score: int) -> bool:
    """Keep a score that came by itself (``conn``: a connection, autocommitted by the caller);
    False when the call has one already."""
    try:
        conn.execute(insert(CallRating).values(account_id=account_id, call_id=call_id, score=score,
                                               received_at=utcnow()))
    except IntegrityError:
        return False
    return True


def of_call(session, row: OutboxEntry) -> int | None:
    """The call's score: the one received, else the one its ``history`` carried."""
    kept = session.get(CallRating, (row.account_id, row.call_id))
    return kept.score if kept is not None else score_of(row.record.get("rating"))


def noted(session, row: OutboxEntry, score: int) -> None:
    """The call's score is written (or there is nothing to write it on): in the call's commit.
    A ``cmd=rating`` stored meanwhile is the row marked, not a second one."""
    kept = session.get(CallRating, (row.account_id, row.call_id))
    if kept is None:
        try:
            with session.begin_nested():
                session.add(CallRating(account_id=row.account_id, call_id=row.call_id, score=score,
                                       received_at=utcnow(), noted_at=utcnow()))
            return
        except IntegrityError:
            kept = session.get(CallRating, (row.account_id, row.call_id))
    if kept is not None and kept.noted_at is None:
        kept.noted_at = utcnow()


def waiting(session, account_id: str, limit: int = 100) -> list[tuple[CallRating, OutboxEntry]]:
    """Scores that came after their call was written, not on its communication yet, of an
    active account (an inactive one writes nothing, so nothing waits for it)."""
    return list(session.execute(select(CallRating, OutboxEntry).join(OutboxEntry, (
        OutboxEntry.account_id == CallRating.account_id) & (OutboxEntry.call_id == CallRating.call_id)
        & (OutboxEntry.kind == OutboxEntry.CALL)).join(Settings, Settings.account_id == CallRating.account_id).where(
        CallRating.account_id == account_id, CallRating.noted_at.is_(None),
        OutboxEntry.state == OutboxEntry.SENT, *ACTIVE).limit(limit)).all())


def accounts_waiting(session) -> list[str]:
    """Active accounts with such scores (the sweep wakes their writers: Redis may have lost
    the wake-up)."""
    return list(session.execute(select(CallRating.account_id).distinct().join(OutboxEntry, (
        OutboxEntry.account_id == CallRating.account_id) & (OutboxEntry.call_id == CallRating.call_id)
        & (OutboxEntry.kind == OutboxEntry.CALL)).join(Settings, Settings.account_id == CallRating.account_id).where(
        CallRating.noted_at.is_(None), OutboxEntry.state == OutboxEntry.SENT, *ACTIVE)).scalars())


def add_late(session, client: MegaplanClient, engine, rating: CallRating, row: OutboxEntry) -> None:
    """Put a late score on the written call's communication, once; the caller commits."""
    if row.callback_todo_id:
        text = words(rating.score)
        with intents.lease(engine, rating.account_id, Intent.RATING, rating.call_id) as claim:
            if claim.megaplan_id is None:
                if claim.fresh or not commented(client, row.callback_todo_id, text):
                    client.comment_todo(row.callback_todo_id, text)
                claim.record(row.callback_todo_id)
    session.execute(update(CallRating).where(CallRating.account_id == rating.account_id,
                                             CallRating.call_id == rating.call_id).values(noted_at=utcnow()))
