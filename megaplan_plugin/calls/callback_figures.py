"""The missed-calls report: who was called back in time, late, not at all, for a period.

Read from the plugin's own tables, never from Megaplan: the hourly counts kept as callbacks
change (``callback_tallies.py``: one query for every figure of every period), and the
callbacks past their deadline that the writer has not handed on yet (``ix_megaplan_callback_due``).
Callbacks belong to the period of their first missed call; missed calls to the period they
were missed in. Periods are the account's days.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from megaplan_plugin.calls import callback_tallies as tallies
from megaplan_plugin.models import Callback, MegaplanEmployee, aware
from megaplan_plugin.web import timezones

# (key, title, days back including today)
PERIODS = [("today", "Сегодня", 1), ("7", "7 дней", 7), ("30", "30 дней", 30)]


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
    """The figures of one period."""
    return figures_of(session, account_id, credential_id, [since], until, now,
                      employees_of=since if with_employees else None)[0]


def figures_of(session, account_id: str, credential_id: int | None, starts: list[datetime], until: datetime,
               now: datetime, employees_of: datetime | None = None) -> list[Figures]:
    """The figures of periods that end together (today, 7 and 30 days): two queries in all,
    whatever the number of periods; employees for the period starting at ``employees_of``."""
    counts = tallies.read(session, account_id, starts, until)
    overdue = _past_deadline(session, account_id, starts, until, now)
    found = []
    for since in starts:
        mine = counts[since]

        def total(figure: str) -> int:
            return mine.get(figure, {}).get("", 0)
        figures = Figures(since, until, missed=total(tallies.MISSED), callbacks=total(tallies.CALLBACKS),
                          in_time=total(tallies.IN_TIME), late=total(tallies.LATE), client=total(tallies.CLIENT))
        figures.open = figures.callbacks - figures.in_time - figures.late - figures.client
        # overdue: handed on, and those past their deadline the writer has not come to yet
        figures.overdue = total(tallies.ESCALATED_OPEN) + overdue[since]
        figures.median_seconds = tallies.median_wait(mine.get(tallies.WAIT, {}))
        if since == employees_of:
            figures.employees = _employees(session, credential_id, mine)
        found.append(figures)
    return found


def _past_deadline(session, account_id: str, starts: list[datetime], until: datetime, now: datetime) -> dict:
    """Open callbacks past their deadline not handed on yet, per period (the partial index
    ``ix_megaplan_callback_due`` holds only those not handed on: a handful)."""
    times = session.execute(select(Callback.opened_at).where(
        Callback.outcome.is_(None), Callback.escalated_at.is_(None), Callback.due_at <= now,
        Callback.account_id == account_id, Callback.opened_at >= min(starts),
        Callback.opened_at < until)).scalars().all()
    return {since: sum(aware(t) >= since for t in times) for since in starts}


def _employees(session, credential_id, counts: dict) -> list[EmployeeFigures]:
    people: dict[str, EmployeeFigures] = {}
    for figure, attribute in ((tallies.RUNG, "rung"), (tallies.CALLED_BACK, "called_back"),
                              (tallies.CALLED_BACK_IN_TIME, "in_time")):
        for employee_id, n in counts.get(figure, {}).items():
            person = people.setdefault(employee_id, EmployeeFigures(employee_id, ""))
            setattr(person, attribute, n)
    if people and credential_id is not None:
        for employee_id, name in session.execute(select(MegaplanEmployee.megaplan_id, MegaplanEmployee.name).where(
                MegaplanEmployee.credential_id == credential_id, MegaplanEmployee.megaplan_id.in_(sorted(people)))):
            people[employee_id].name = name
    for person in people.values():
        person.name = person.name or f"сотрудник {person.employee_id}"
    return sorted(people.values(), key=lambda p: (-p.rung, -p.called_back, p.name))


def open_state(callback: Callback | None, now: datetime) -> str | None:
    """A missed call's callback as the journal says it."""
    if callback is None:
        return None
    if callback.outcome is not None:
        return Callback.OUTCOME_TITLES[callback.outcome]
    if callback.escalated_at is not None or (callback.due_at is not None and aware(callback.due_at) <= now):
        return "просрочен"
    return "ждёт перезвона"
