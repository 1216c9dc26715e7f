"""«Пропущенные звонки»: the report of who was called back, for today, 7 and 30 days.

The figures come from ``calls/callback_figures.py`` (the plugin's own tables, one indexed
query per figure); the page shows the three periods side by side and the employees of the one
chosen; «Скачать CSV» gives the same as the journal's export does (``;``, UTF-8 with a BOM).
"""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, g, render_template, request

from megaplan_plugin import cabinet
from megaplan_plugin.calls import callback_figures, callbacks
from megaplan_plugin.models import Settings, utcnow
from megaplan_plugin.web import csv_cell, not_kept, timezones
from megaplan_plugin.web.guard import require_account

bp = Blueprint("megaplan_callbacks", __name__, url_prefix="/plugins/megaplan/callbacks")
bp.after_request(not_kept)
ROWS = [("missed", "Пропущенных звонков"), ("callbacks", "Номеров, которым нужно перезвонить"),
        ("in_time", "Перезвонили в срок"), ("late", "Перезвонили с опозданием"),
        ("client", "Клиент дозвонился сам"), ("open", "Ещё не перезвонили"), ("overdue", "из них просрочено"),
        ("median", "Медиана времени до перезвона")]


bp.before_request(require_account)


def _periods(with_employees_of: str | None = None) -> tuple[Settings, list]:
    session = cabinet.db().session
    settings = session.get(Settings, g.account_id)
    tz = settings.time_zone if settings else timezones.DEFAULT
    starts = {key: callback_figures.bounds(days, tz)[0] for key, _, days in callback_figures.PERIODS}
    _, until = callback_figures.bounds(1, tz)
    found = callback_figures.figures_of(session, g.account_id, settings.credential_id if settings else None,
                                        list(starts.values()), until, utcnow(),
                                        employees_of=starts.get(with_employees_of))
    return settings, [(key, title, figures) for (key, title, _), figures in zip(callback_figures.PERIODS, found)]


def _chosen() -> str:
    asked = request.args.get("period", "")
    return asked if asked in {key for key, _, _ in callback_figures.PERIODS} else "7"


def _value(figures, key: str) -> str:
    if key == "median":
        return "—" if figures.median_seconds is None else callbacks.duration_words(figures.median_seconds)
    return str(getattr(figures, key))


@bp.get("/")
def report():
    chosen = _chosen()
    settings, periods = _periods(with_employees_of=chosen)
    employees = next(f for key, _, f in periods if key == chosen).employees
    return render_template("megaplan/callbacks.html", periods=periods, rows=ROWS, value=_value, chosen=chosen,
                           employees=employees, settings=settings,
                           time_zone=timezones.LABELS.get(settings.time_zone if settings else None, ""))


@bp.get("/report.csv")
def export():
    chosen = _chosen()
    settings, periods = _periods(with_employees_of=chosen)
    buffer = io.StringIO()
    out = csv.writer(buffer, delimiter=";")
    out.writerow(["Показатель"] + [title for _, title, _ in periods])
    for key, title in ROWS:
        out.writerow([title] + [_value(f, key) for _, _, f in periods])
    out.writerow([])
    title = next(t for key, t, _ in periods if key == chosen)
    out.writerow([f"Сотрудник ({title})", "Звонили ему", "Перезвонил", "из них в срок"])
    for person in next(f for key, _, f in periods if key == chosen).employees:
        out.writerow([csv_cell(person.name), person.rung, person.called_back, person.in_time])
    name = f"megaplan-missed-calls-{timezones.today(settings.time_zone if settings else None).isoformat()}.csv"
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
