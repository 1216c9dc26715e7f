"""Missed calls come back: one open callback per number, a deadline, closed by whatever reaches
the client, and handed to a second person once when the deadline passes.

A missed incoming call opens its number's callback, or joins the one still open (``misses``):
one todo in Megaplan says «Перезвонить», further misses add a comment and the employees they
rang. An answered call of that number closes it: an outgoing one by any employee
(«перезвонили», in time or late against the deadline) or an incoming one («клиент дозвонился
сам»); the todo is finished with a comment that says which, when, who and how long after the
first miss. An open callback past its deadline gets the escalation participant and a comment,
once.

Everything here runs in the account's one writer (``delivery/writer.py``), so the calls of an
account are taken in turn; the callback's rows change in the writer's transaction, with the
call's outcome. Each Megaplan request is guarded by a durable intent (``delivery/intents.py``)
so that an answer lost on the way is looked up, never sent twice. The partial unique index on
open callbacks makes a second open callback of a number impossible, whatever else runs.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from megaplan_plugin import phones
from megaplan_plugin.calls import callback_tallies as tallies
from megaplan_plugin.calls import deadlines
from megaplan_plugin.calls.rules import ACTIVE
from megaplan_plugin.delivery import intents
from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import Callback, CallbackRung, Intent, OutboxEntry, Settings, aware
from megaplan_plugin.web import timezones

ANSWERED = "answered"


def is_missed(row: OutboxEntry) -> bool:
    """A missed incoming call: the ones that must be called back."""
    return row.direction == "in" and row.status != ANSWERED


def open_for(session, account_id: str, phone: str) -> Callback | None:
    return session.execute(select(Callback).where(
        Callback.account_id == account_id, Callback.client_phone == phone,
        Callback.outcome.is_(None))).scalar_one_or_none()


def numbers_with_open(session, account_id: str, numbers: list[str]) -> set[str]:
    """Which of ``numbers`` have a callback still open: an answered call of one of them closes
    it, so it is more than a history entry."""
    if not numbers:
        return set()
    return set(session.execute(select(Callback.client_phone).where(
        Callback.account_id == account_id, Callback.outcome.is_(None),
        Callback.client_phone.in_(sorted(set(numbers))))).scalars())


# -- a missed call ---------------------------------------------------------------------------------
def due_for(settings: Settings, row: OutboxEntry) -> datetime:
    """The deadline of a callback that ``row``'s miss would open."""
    return deadlines.due_at(aware(row.started_at), settings.callback_within, deadlines.hours_of(settings))


def missed(session, settings: Settings, row: OutboxEntry, rung: list[str], todo_id: str | None) -> Callback:
    """Put a missed call on its number's open callback, or open one (after the call's requests:
    this writes). ``rung``: the Megaplan employees the call rang; ``todo_id``: its todo, if any."""
    started = aware(row.started_at)
    callback = open_for(session, row.account_id, row.client_phone)
    if callback is None:
        callback = Callback(account_id=row.account_id, client_phone=row.client_phone, opened_at=started,
                            last_missed_at=started, misses=1, due_at=due_for(settings, row))
        session.add(callback)
        session.flush()
        tallies.add(session, row.account_id, started, tallies.CALLBACKS)
    else:
        callback.misses += 1
        callback.last_missed_at = max(aware(callback.last_missed_at), started)
    tallies.add(session, row.account_id, started, tallies.MISSED)
    callback.todo_id = callback.todo_id or todo_id
    row.callback_id = callback.id
    already = set(session.execute(select(CallbackRung.employee_id).where(
        CallbackRung.callback_id == callback.id)).scalars())
    for employee_id in rung:
        session.add(CallbackRung(account_id=row.account_id, callback_id=callback.id, call_id=row.call_id,
                                 employee_id=employee_id, missed_at=started))
        if employee_id not in already:  # a callback counts once for each employee it rang
            tallies.add(session, row.account_id, callback.opened_at, tallies.RUNG, employee_id)
            already.add(employee_id)
    return callback


def deadline_text(due: datetime | None, tz: str | None) -> str | None:
    """The todo's description: the deadline, as the account reads it."""
    if due is None:
        return None
    return f"Перезвонить до {timezones.local(due, tz, '%d.%m.%Y %H:%M')}."


def another_miss(client: MegaplanClient, engine, callback: Callback, row: OutboxEntry, rung: list[str],
                 tz: str | None) -> None:
    """A further miss of a number whose callback todo is open: a comment and the employees it
    rang, on that todo (no second todo)."""
    marker = f"звонок АТС {row.call_id}"
    with intents.lease(engine, row.account_id, Intent.NOTE, row.call_id) as claim:
        if claim.megaplan_id is None:
            _add_participants(client, callback.todo_id, rung)
            if claim.fresh or not commented(client, callback.todo_id, marker):
                when = timezones.local(row.started_at, tz, "%d.%m.%Y %H:%M")
                client.comment_todo(callback.todo_id, f"Ещё один пропущенный звонок {when} "
                                    f"(пропущенных звонков: {callback.misses + 1}), {marker}.")
            claim.record(callback.todo_id)


def _add_participants(client: MegaplanClient, todo_id: str, employees: list[str]) -> None:
    if not employees:
        return
    todo = client.todo(todo_id, ["participants", "responsible"])
    present = {str((p.get("subject") or {}).get("id")) for p in todo.get("participants") or [] if isinstance(p, dict)}
    present.add(str((todo.get("responsible") or {}).get("id")))
    for employee_id in employees:
        if str(employee_id) not in present:
            client.add_todo_participant(todo_id, employee_id)
            present.add(str(employee_id))


def commented(client: MegaplanClient, todo_id: str, marker: str) -> bool:
    return any(marker in (c.get("content") or "") for c in client.todo_comments(todo_id))


# -- an answered call reaches the number -------------------------------------------------------
def close_reached(session, client: MegaplanClient, engine, row: OutboxEntry, employee_id: str | None,
                  tz: str | None) -> Callback | None:
    """Close the number's open callback that an answered call ``row`` reached: its todos
    finished with the comment that says how, once. Returns the callback closed, if any."""
    started = aware(row.started_at)
    callback = open_for(session, row.account_id, row.client_phone)
    if callback is None or aware(callback.opened_at) > started:
        return None  # nothing open, or missed after this call began (its push came late)
    outcome = Callback.CLIENT if row.direction == "in" else (
        Callback.IN_TIME if callback.due_at is None or started <= aware(callback.due_at) else Callback.LATE)
    name = (row.record.get("user") or {}).get("name") or None
    text = f"{closing_text(callback, outcome, started, name, tz)} Звонок АТС {row.call_id}."
    missed_rows = session.execute(select(OutboxEntry).where(
        OutboxEntry.callback_id == callback.id, OutboxEntry.callback_closed_by.is_(None))).scalars().all()
    todos = sorted({r.callback_todo_id for r in missed_rows if r.callback_todo_id} |
                   ({callback.todo_id} if callback.todo_id else set()))
    for todo_id in todos:
        with intents.lease(engine, row.account_id, Intent.FINISH, todo_id) as claim:
            if claim.megaplan_id is None:
                if claim.fresh or not client.todo(todo_id, ["timeFinished"]).get("timeFinished"):
                    client.finish_todo(todo_id, text)
                claim.record(todo_id)
    callback.outcome, callback.closed_at, callback.closed_call_id = outcome, started, row.call_id
    callback.closed_by_id, callback.closed_by_name = employee_id, (name or "")[:200] or None
    callback.wait_seconds = max(0, int((started - aware(callback.opened_at)).total_seconds()))
    for missed_row in missed_rows:
        missed_row.callback_closed_by = row.call_id
    _count_closed(session, callback)
    return callback


def _count_closed(session, callback: Callback) -> None:
    account, opened = callback.account_id, callback.opened_at
    tallies.add(session, account, opened, callback.outcome)
    if callback.escalated_at is not None:
        tallies.add(session, account, opened, tallies.ESCALATED_OPEN, delta=-1)
    if callback.outcome in (Callback.IN_TIME, Callback.LATE):
        tallies.add(session, account, opened, tallies.WAIT, str(tallies.wait_bucket(callback.wait_seconds)))
        if callback.closed_by_id:
            tallies.add(session, account, opened, tallies.CALLED_BACK, callback.closed_by_id)
            if callback.outcome == Callback.IN_TIME:
                tallies.add(session, account, opened, tallies.CALLED_BACK_IN_TIME, callback.closed_by_id)


def closing_text(callback: Callback, outcome: str, started: datetime, name: str | None, tz: str | None) -> str:
    when = timezones.local(started, tz, "%d.%m.%Y %H:%M")
    after = duration_words((started - aware(callback.opened_at)).total_seconds())
    attempts = f"пропущенных звонков: {callback.misses}"
    if outcome == Callback.CLIENT:
        who = f", ответил {name}" if name else ""
        return f"Клиент дозвонился сам {when}{who}, через {after} после пропущенного звонка ({attempts})."
    verdict = "в срок" if outcome == Callback.IN_TIME else "с опозданием"
    who = f" {name}" if name else ""
    return f"Перезвонили{who} {when}, через {after} после пропущенного звонка, {verdict} ({attempts})."


def duration_words(seconds: int) -> str:
    """«16 ч 15 мин», «2 дн 3 ч», «0 мин»: a wait as the comments and the report say it."""
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} дн"] if days else []
    parts += [f"{hours} ч"] if hours else []
    parts += [f"{minutes} мин"] if minutes or not parts else []
    return " ".join(parts)


# -- the deadline passes -------------------------------------------------------------------------
def overdue(session, account_id: str, now: datetime) -> list[Callback]:
    return list(session.execute(select(Callback).where(
        Callback.outcome.is_(None), Callback.escalated_at.is_(None), Callback.due_at <= now,
        Callback.account_id == account_id).order_by(Callback.due_at)).scalars())


def accounts_overdue(session, now: datetime) -> list[str]:
    """Active accounts with a callback past its deadline and not handed on
    (``ix_megaplan_callback_due``); an inactive one hands nothing on until it is active again."""
    return list(session.execute(select(Callback.account_id).distinct().join(
        Settings, Settings.account_id == Callback.account_id).where(
        Callback.outcome.is_(None), Callback.escalated_at.is_(None), Callback.due_at <= now, *ACTIVE)).scalars())


def next_deadline(session, account_id: str) -> datetime | None:
    """When the account's writer next has a callback to hand on (None: none, or inactive)."""
    return aware(session.execute(select(Callback.due_at).join(
        Settings, Settings.account_id == Callback.account_id).where(
        Callback.outcome.is_(None), Callback.escalated_at.is_(None), Callback.due_at.is_not(None),
        Callback.account_id == account_id, *ACTIVE).order_by(Callback.due_at).limit(1)).scalar())


def escalation_target(settings: Settings) -> str | None:
    if settings.escalate_to == "supervisor" and settings.supervisor_id:
        return settings.supervisor_id
    return settings.default_responsible_id


def escalate(session, client: MegaplanClient, engine, settings: Settings, callback: Callback,
             now: datetime) -> None:
    """Hand an overdue callback to the second person: a participant of its todo and a
    comment, once; marked «просрочен» in any case (without a todo there is nobody to tell)."""
    target = escalation_target(settings)
    if callback.todo_id and target:
        marker = f"перезвон №{callback.id}"
        with intents.lease(engine, callback.account_id, Intent.ESCALATE, str(callback.id)) as claim:
            if claim.megaplan_id is None:
                _add_participants(client, callback.todo_id, [target])
                if claim.fresh or not commented(client, callback.todo_id, marker):
                    due = timezones.local(callback.due_at, settings.time_zone, "%d.%m.%Y %H:%M")
                    client.comment_todo(callback.todo_id, (
                        f"Просрочено: клиенту {phones.display(callback.client_phone)} не перезвонили до {due} "
                        f"(пропущенных звонков: {callback.misses}). Дело передано для контроля ({marker})."))
                claim.record(callback.todo_id)
    mark_escalated(session, callback, now, target)


def mark_escalated(session, callback: Callback, now: datetime, target: str | None) -> None:
    """«просрочен»: handed on (or refused for good by Megaplan), not to be tried again."""
    callback.escalated_at, callback.escalated_to = now, target
    tallies.add(session, callback.account_id, callback.opened_at, tallies.ESCALATED_OPEN)
