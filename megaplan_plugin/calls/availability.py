"""Whether a Megaplan employee can take a call, from what Megaplan says of them.

Megaplan's ``Employee`` carries ``isWorking`` (false once fired), ``fireDay`` and the
``nearestVacation``; they are kept in the local employee index (``megaplan_employee``),
refreshed with the employees, so routing decides at ring time without a request. Out of the
account's working hours (the settings of «Пропущенные звонки») counts as away only when the
account says so: Megaplan keeps no working schedule of a person.
"""
from __future__ import annotations

from datetime import date, datetime

from megaplan_plugin.megaplan import unconfirmed


def absence_fields(employee: dict) -> dict:
    """The index's columns from a Megaplan ``Employee``."""
    vacation = employee.get("nearestVacation") if isinstance(employee.get("nearestVacation"), dict) else {}
    first, last = unconfirmed.date_only(vacation.get("firstDay")), unconfirmed.date_only(vacation.get("lastDay"))
    fired = unconfirmed.date_only(employee.get("fireDay"))
    return {"working": employee.get("isWorking") is not False,
            "fire_day": fired.isoformat() if fired else None,
            "vacation_first": first.isoformat() if first else None,
            "vacation_last": (last or first).isoformat() if first else None}


def away(employee, today: date, out_of_hours: bool = False) -> str | None:
    """Why ``employee`` (a row with the index's columns) cannot take a call today, or None."""
    if not employee.working or (employee.fire_day and employee.fire_day <= today.isoformat()):
        return "уволен"
    if employee.vacation_first and employee.vacation_first <= today.isoformat() <= (employee.vacation_last or ""):
        return f"в отпуске до {_day(employee.vacation_last)}"
    if out_of_hours:
        return "вне рабочего времени"
    return None


def _day(iso: str) -> str:
    return datetime.strptime(iso, "%Y-%m-%d").strftime("%d.%m.%Y")
