"""«Копировать записи в Мегаплан»: after a call is written, its recording is uploaded to
Megaplan as a file and attached to the call's communication, or without one to the client's
card (unconfirmed.COPY_WITHOUT_TODO).

The row says what is owed (``copy_state`` pending, ``copy_next_at``), so nothing depends on
Redis keeping the job: the sweep queues copies whose job is overdue (outbox.copies_overdue). The upload is a create,
so it has a durable intent like every other (a lost answer is never uploaded twice); attaching
is idempotent. A copy never holds up the history: it is a job of its own, after the call is
written, and streams the file from the PBX to Megaplan without holding it in memory.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from megaplan_plugin import cabinet, phones
from megaplan_plugin.calls import clients, recording_links
from megaplan_plugin.calls.connection import client_for, side_engine
from megaplan_plugin.delivery import intents, queues
from megaplan_plugin.delivery.worker import with_app_context
from megaplan_plugin.megaplan.errors import MegaplanError
from megaplan_plugin.models import Credential, Intent, OutboxEntry, Settings, aware, utcnow

log = logging.getLogger(__name__)
PENDING, COPIED, FAILED = OutboxEntry.COPY_PENDING, OutboxEntry.COPY_DONE, OutboxEntry.COPY_FAILED
RETRY_SECONDS = (30, 60, 300, 900, 3600, 3 * 3600)
# The PBX may push `history` before the recording exists: it is waited for this long.
NOT_READY_FOR = timedelta(hours=2)


def wanted(settings: Settings, row: OutboxEntry) -> None:
    """Mark a call just written as owing a copy, when the account wants copies and it has a
    recording; the writer's commit keeps the mark."""
    if settings.copy_recordings and row.record.get("recording_url") and row.copy_state is None:
        row.copy_state, row.copy_next_at = PENDING, utcnow()


@with_app_context
def copy_recording(row_id: int) -> str:
    db = cabinet.db()
    row = db.session.get(OutboxEntry, row_id)
    if row is None or row.copy_state != PENDING:
        return "nothing owed"
    try:
        outcome = _copy(row)
    except intents.Busy as busy:
        outcome = _again(row, busy.until)
    except MegaplanError as exc:
        if exc.transient:
            outcome = _retry(row, str(exc))
        else:
            outcome = _give_up(row, f"копия записи не сделана: Мегаплан: {exc}")
    db.session.commit()
    return outcome


def _copy(row: OutboxEntry) -> str:
    host = cabinet.host()
    session = cabinet.db().session
    settings = session.get(Settings, row.account_id)
    found = host.pbx.recording(row.account_id, row.call_id)
    if found is None:
        if utcnow() - aware(row.started_at) < NOT_READY_FOR:
            return _retry(row, "АТС ещё не сохранила запись")
        return _give_up(row, "копия записи не сделана: АТС не хранит запись")
    client = client_for(session.get(Credential, settings.credential_id))
    try:
        with intents.lease(side_engine(), row.account_id, Intent.FILE, row.call_id) as claim:
            if claim.megaplan_id is None:
                # an earlier try whose answer was lost may have left a file in Megaplan that
                # nothing can find; a second upload makes a second file, never a second attachment
                made = client.upload_file(_file_name(row, found.content_type), found.content_type,
                                          found.chunks, found.total_length)
                claim.megaplan_id = str(made["id"])
            claim.record(claim.megaplan_id, "File")
    finally:
        found.close()
    file_id = claim.megaplan_id
    todo = intents.made(session, row.account_id, Intent.TODO, row.call_id)
    if todo:
        client.attach_to_todo(todo, file_id)
        where = f"к коммуникации №{todo}"
    else:
        match = clients.lookup(session, settings.credential_id, row.client_phone)
        if match is None:
            return _give_up(row, "копия записи не сделана: у звонка нет ни коммуникации, ни клиента")
        client.attach_to_contractor(match.contractor, file_id)
        where = "к карточке клиента"
    row.copy_state, row.copy_file_id, row.copy_next_at = COPIED, file_id, None
    _note(row, f"запись скопирована в Мегаплан (файл №{file_id}, {where})")
    return "copied"


def _retry(row: OutboxEntry, why: str) -> str:
    row.copy_attempts += 1
    if row.copy_attempts > len(RETRY_SECONDS):
        return _give_up(row, f"копия записи не сделана после {row.copy_attempts} попыток: {why}")
    return _again(row, utcnow() + timedelta(seconds=RETRY_SECONDS[row.copy_attempts - 1]), why)


def _again(row: OutboxEntry, at, why: str | None = None) -> str:
    row.copy_next_at = at or utcnow()
    log.warning("megaplan: recording of call %s not copied yet (%s); next try at %s",
                row.call_id, why or "another try is in flight", row.copy_next_at)
    queues.enqueue_copy(row.id, at=row.copy_next_at)
    return "later"


def _give_up(row: OutboxEntry, why: str) -> str:
    row.copy_state, row.copy_next_at = FAILED, None
    _note(row, why)
    return "failed"


def _note(row: OutboxEntry, text: str) -> None:
    row.reason = "; ".join(part for part in (row.reason, text) if part)


def _file_name(row: OutboxEntry, content_type: str) -> str:
    return (f"{aware(row.started_at):%Y-%m-%d_%H-%M}_{phones.digits(row.client_phone)}_{row.call_id[:32]}"
            f".{recording_links.extension(content_type)}")
