"""The missed-calls report: who was called back in time, late, not at all, for a period.

Read from the plugin's own tables, never from Megaplan: each figure is one query on an index
(``ix_megaplan_outbox_journal``, ``ix_megaplan_callback_report``,
``ix_megaplan_callback_rung_report``). Callbacks belong to the period of their first missed
call; missed calls to the period they were missed in. Periods are the account's days.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from megaplan_plugin.models import Callback, CallbackRung, MegaplanEmployee, OutboxEntry, aware
from megaplan_plugin.web import timezones

# (key, title, days back including today)
PERIODS = [("today", "Сегодня", 1), ("7", "7 дней", 7), ("30", "30 дней", 30)]
CALLED_BACK = (Callback.IN_TIME, Callback.LATE)
_OUTCOME_FIELDS = {Callback.IN_TIME: "in_time", Callback.LATE: "late", Callback.CLIENT: "client"}


@dataclass
class EmployeeFigures:
    employee_id: str
    name: str
    rung: int = 0          # callbacks of misses that rang them
    called_back: int = 0   # callbacks they closed by calling
    in_time: int = 0


@dataclass
class Figures:
    since: datetime
    until: datetime
    missed: int = 0        # missed calls
    callbacks: int = 0     # numbers to call back (several misses of one number are one)
    in_time: int = 0
    late: int = 0
    client: int = 0        # the client called again and got through
    open: int = 0
    overdue: int = 0       # of the open ones, past their deadline
    median_seconds: int | None = None  # first miss to the call back, of those called back
    employees: list[EmployeeFigures] = field(default_factory=list)


def bounds(days: int, tz: str | None) -> tuple[datetime, datetime]:
    """[the start of the day ``days - 1`` days ago, the end of today), the account's days, UTC."""
    today = timezones.today(tz)
    since, _ = timezones.day_bounds(today - timedelta(days=days - 1), tz)
    _, until = timezones.day_bounds(today, tz)
    return since, until


def figures(session, account_id: str, credential_id: int | None, since: datetime, until: datetime,
            now: datetime, with_employees: bool = True) -> Figures:
    found = Figures(since, until)
    in_period = (Callback.account_id == account_id, Callback.opened_at >= since, Callback.opened_at < until)
    found.missed = session.execute(select(func.count()).where(
        OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL,
        OutboxEntry.started_at >= since, OutboxEntry.started_at < until,
        OutboxEntry.callback_id.is_not(None))).scalar()
    late_now = case((Callback.escalated_at.is_not(None), 1), (Callback.due_at <= now, 1), else_=0)
    for outcome, overdue, count in session.execute(select(Callback.outcome, late_now, func.count()).where(
            *in_period).group_by(Callback.outcome, late_now)):
        found.callbacks += count
        if outcome is None:
            found.open += count
            found.overdue += count if overdue else 0
        else:
            field_name = _OUTCOME_FIELDS[outcome]
            setattr(found, field_name, getattr(found, field_name) + count)
    called_back = found.in_time + found.late
    if called_back:
        found.median_seconds = session.execute(select(Callback.wait_seconds).where(
            *in_period, Callback.outcome.in_(CALLED_BACK)).order_by(Callback.wait_seconds)
            .offset((called_back - 1) // 2).limit(1)).scalar()
    if with_employees:
        found.employees = _employees(session, account_id, credential_id, since, until, in_period)
    return found


def _employees(session, account_id, credential_id, since, until, in_period) -> list[EmployeeFigures]:
    people: dict[str, EmployeeFigures] = {}

    def person(employee_id: str, name: str | None = None) -> EmployeeFigures:
        if employee_id not in people:
            people[employee_id] = EmployeeFigures(employee_id, name or "")
        return people[employee_id]

    for employee_id, count in session.execute(select(
            CallbackRung.employee_id, func.count(func.distinct(CallbackRung.callback_id))).where(
            CallbackRung.account_id == account_id, CallbackRung.missed_at >= since,
            CallbackRung.missed_at < until).group_by(CallbackRung.employee_id)):
        person(employee_id).rung = count
    for employee_id, name, count, in_time in session.execute(select(
            Callback.closed_by_id, func.max(Callback.closed_by_name), func.count(),
            func.sum(case((Callback.outcome == Callback.IN_TIME, 1), else_=0))).where(
            *in_period, Callback.outcome.in_(CALLED_BACK), Callback.closed_by_id.is_not(None))
            .group_by(Callback.closed_by_id)):
        found = person(employee_id, name)
        found.called_back, found.in_time = count, int(in_time or 0)
    if people and credential_id is not None:
        for employee_id, name in session.execute(select(MegaplanEmployee.megaplan_id, MegaplanEmployee.name).where(
                MegaplanEmployee.credential_id == credential_id, MegaplanEmployee.megaplan_id.in_(sorted(people)))):
            people[employee_id].name = name
    for found in people.values():
        found.name = found.name or f"сотрудник {found.employee_id}"
    return sorted(people.values(), key=lambda p: (-p.rung, -p.called_back, p.name))


def duration_words(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes = seconds // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours} ч {minutes:02d} мин" if hours else f"{minutes} мин"


def open_state(callback: Callback | None, now: datetime) -> str | None:
    """A missed call's callback as the journal says it."""
    if callback is None:
        return None
    if callback.outcome is not None:
        return Callback.OUTCOME_TITLES[callback.outcome]
    if callback.escalated_at is not None or (callback.due_at is not None and aware(callback.due_at) <= now):
        return "просрочен"
    return "ждёт перезвона"
