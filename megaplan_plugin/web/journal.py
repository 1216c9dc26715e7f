"""The sync journal (Russian): every call the PBX reported, with what became of it in Megaplan.

It answers «почему звонок не попал в Мегаплан?»: state, reason, the Megaplan error in Russian,
attempts, the next retry. Times and the date filter are in the account's time zone. Every
query is on an index (``ix_megaplan_outbox_journal*``) and pages go by a cursor (the last
row's start and id), so a page costs the same with 100 rows or 100,000.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from flask import (Blueprint, Response, abort, flash, g, get_template_attribute, jsonify, redirect,
                   render_template, request, stream_with_context, url_for)
from redis.exceptions import RedisError
from sqlalchemy import and_, func, or_, select

from megaplan_plugin import cabinet, phones
from megaplan_plugin.delivery import queues
from megaplan_plugin.calls import callback_figures, ratings
from megaplan_plugin.megaplan import unconfirmed
from megaplan_plugin.models import CallRating, Callback, Credential, OutboxEntry, Settings, aware, utcnow
from megaplan_plugin.web import inputs as web_input
from megaplan_plugin.web import numbers
from megaplan_plugin.web import timezones
from megaplan_plugin.web import REDIS_DOWN, csv_cell, not_kept, queue_answers, split_error
from megaplan_plugin.web.forms import ActionForm
from megaplan_plugin.web.guard import require_account

bp = Blueprint("megaplan_journal", __name__, url_prefix="/plugins/megaplan/journal")
PAGE_SIZE = 100
RETRY_ALL_LIMIT = 5000
COUNT_CAP = 10_000
_QUERY = re.compile(r"[A-Za-z0-9_.~%=&+-]+")  # a filter query as the browser encodes it
_CURSOR = re.compile(r"(\d{10,11}\.\d{1,6})~(\d{1,18})")
DIRECTIONS = {"in": "входящие", "out": "исходящие"}
STATUS_TITLES = {
    "answered": "отвечен", "missed": "пропущенный", "busy": "занято", "cancelled": "отменён",
    "unavailable": "недоступен", "not_allowed": "запрещён", "not_found": "номер не найден",
    "failed": "ошибка АТС",
}

bp.after_request(not_kept)


bp.before_request(require_account)


@dataclass
class Filters:
    state: str = ""
    day: date | None = None
    direction: str = ""

    @property
    def any(self) -> bool:
        return bool(self.state or self.day or self.direction)

    def args(self) -> dict:
        return {k: v for k, v in (("state", self.state), ("date", self.day.isoformat() if self.day else ""),
                                  ("direction", self.direction)) if v}


def _filters() -> Filters:
    """The filters as asked; one that cannot apply is dropped with a message, not a 400."""
    found = Filters()
    state = request.args.get("state", "")
    if state in OutboxEntry.STATE_TITLES:
        found.state = state
    elif state:
        flash("Неизвестное состояние: фильтр по состоянию не применён.", "warning")
    direction = request.args.get("direction", "")
    if direction in DIRECTIONS:
        found.direction = direction
    elif direction:
        flash("Неизвестное направление: фильтр по направлению не применён.", "warning")
    try:
        found.day = web_input.day(request.args.get("date", ""))
    except web_input.InvalidInput as exc:
        flash(f"{exc.message}. Фильтр по дате не применён.", "warning")
    return found


def _megaplan_url(account_id: str) -> str | None:
    """The address of the account's Megaplan, for links to its pages."""
    settings = cabinet.db().session.get(Settings, account_id)
    credential = cabinet.db().session.get(Credential, settings.credential_id) \
        if settings is not None and settings.credential_id else None
    return credential.base_url if credential is not None else None


def _time_zone(account_id: str) -> str:
    settings = cabinet.db().session.get(Settings, account_id)
    return settings.time_zone if settings is not None else timezones.DEFAULT


def _where(account_id: str, filters: Filters, tz: str, *, with_state: bool = True) -> list:
    where = [OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL]
    if with_state and filters.state:
        where.append(OutboxEntry.state == filters.state)
    if filters.direction:
        where.append(OutboxEntry.direction == filters.direction)
    if filters.day is not None:
        start, end = timezones.day_bounds(filters.day, tz)
        where += [OutboxEntry.started_at >= start, OutboxEntry.started_at < end]
    return where


def _rows(where: list):
    """Rows with the name of the client the call was written with, a missed call's callback
    and the customer's rating."""
    return select(OutboxEntry, OutboxEntry.client_name, Callback, CallRating.score).outerjoin(
        Callback, Callback.id == OutboxEntry.callback_id).outerjoin(
        CallRating, (CallRating.account_id == OutboxEntry.account_id) & (CallRating.call_id == OutboxEntry.call_id)
    ).where(*where).order_by(OutboxEntry.started_at.desc(), OutboxEntry.id.desc())


def _cursor(row: OutboxEntry) -> str:
    return f"{aware(row.started_at).timestamp():.6f}~{row.id}"


def _after(cursor: str) -> list:
    match = _CURSOR.fullmatch(cursor or "")
    if not match:
        return []
    started = datetime.fromtimestamp(float(match.group(1)), timezone.utc)
    row_id = web_input.db_int(int(match.group(2)))
    if row_id is None:
        return []
    return [or_(OutboxEntry.started_at < started,
                and_(OutboxEntry.started_at == started, OutboxEntry.id < row_id))]


@bp.route("/")
def journal():
    db = cabinet.db()
    filters, tz = _filters(), _time_zone(g.account_id)
    megaplan = _megaplan_url(g.account_id)
    counts = _counts(_where(g.account_id, filters, tz, with_state=False))
    where = _where(g.account_id, filters, tz)
    cursor = request.args.get("after", "")
    found = db.session.execute(_rows(where + _after(cursor)).limit(PAGE_SIZE + 1)).all()
    rows, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    now = utcnow()
    hidden = None  # "the filter hides everything": how many calls there are without it
    if not rows and filters.any and not cursor:
        hidden = _count(_where(g.account_id, Filters(), tz))
    return render_template(
        "megaplan/journal.html", rows=[_view(row, name, tz, callback, now, score, megaplan) for row, name, callback, score in rows], filters=filters,
        counts=counts, total=sum(counts.values()), count_cap=COUNT_CAP, hidden=hidden, states=OutboxEntry.STATE_TITLES,
        directions=DIRECTIONS, time_zone=timezones.LABELS.get(tz, tz), first_page=not cursor,
        next_url=url_for(".journal", **filters.args(), after=_cursor(rows[-1][0])) if more else None,
        export_url=url_for(".export", **filters.args()), action_form=ActionForm(),
        shared=numbers.for_page(g.account_id) if first_page_view(filters, cursor) else None,
        local_time=lambda moment: timezones.local(moment, tz))


def first_page_view(filters: Filters, cursor: str) -> bool:
    """«Номера с несколькими клиентами» above the journal's first, unfiltered page."""
    return not cursor and not filters.any


def _count(where: list) -> int:
    """Rows matching ``where``, counted up to ``COUNT_CAP + 1`` (that many index entries at most)."""
    return cabinet.db().session.execute(select(func.count()).select_from(
        select(OutboxEntry.id).where(*where).limit(COUNT_CAP + 1).subquery())).scalar()


def _counts(where: list) -> dict[str, int]:
    """Calls per state, each counted up to the cap: the page costs the same with 100 or
    100,000 calls (a count beyond the cap reads «больше 10 000»)."""
    return {state: _count(where + [OutboxEntry.state == state]) for state in OutboxEntry.STATE_TITLES}


def _view(row: OutboxEntry, client_name: str | None, tz: str, callback: Callback | None, now,
          score: int | None = None, megaplan: str | None = None) -> dict:
    error, details = split_error(row.last_error)
    score = score if score is not None else ratings.score_of(row.record.get("rating"))
    return {
        "rating": "" if score is None else ratings.short(score),
        # pages of the account's Megaplan (``megaplan``: its address), where the call went
        "client_url": unconfirmed.web_page(megaplan, "ContractorHuman", row.contractor_id) if megaplan else None,
        "todo_url": unconfirmed.web_page(megaplan, "Todo", row.callback_todo_id) if megaplan else None,
        "callback": callback_figures.open_state(callback, now),
        "callback_due": timezones.local(callback.due_at, tz, "%d.%m.%Y %H:%M")
        if callback is not None and callback.outcome is None and callback.due_at is not None else "",
        "row": row, "started": timezones.local(row.started_at, tz),
        "next_retry": timezones.local(row.next_retry_at, tz) if row.state == OutboxEntry.PENDING else "",
        "direction": "входящий" if row.direction == "in" else "исходящий",
        "client": client_name or "", "phone": phones.display(row.client_phone),
        "employee": _employee(row.record),
        "status": STATUS_TITLES.get(row.status, row.status), "state": OutboxEntry.STATE_TITLES[row.state],
        "error": error, "error_details": details,
    }


def _employee(record: dict) -> str:
    """Who took the call; for a call nobody answered, whom the PBX rang."""
    user = (record.get("user") or {}).get("name")
    if user:
        return user
    rung = [u.get("name") or u.get("login") for u in record.get("users_rung") or [] if isinstance(u, dict)]
    return ("звонили: " + ", ".join(n for n in rung if n)) if any(rung) else ""


POLL_LIMIT = 100


@bp.get("/rows.json")
def rows():
    """The journal's rows still on their way, as they are now: the page asks every few
    seconds for its rows in «ожидает» and replaces them (static/megaplan/journal.js)."""
    ids = [web_input.db_int(int(part)) for part in request.args.get("ids", "").split(",")[:POLL_LIMIT]
           if part.isascii() and part.isdigit() and len(part) <= 18]
    ids = [i for i in ids if i is not None]
    if not ids:
        return jsonify({"rows": []})
    tz, megaplan = _time_zone(g.account_id), _megaplan_url(g.account_id)
    found = cabinet.db().session.execute(_rows([OutboxEntry.account_id == g.account_id,
                                                OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.id.in_(ids)])).all()
    row_html = get_template_attribute("megaplan/_journal_row.html", "journal_row")
    now, form = utcnow(), ActionForm()
    return jsonify({"rows": [{"id": row.id, "state": row.state,
                              "html": str(row_html(_view(row, name, tz, callback, now, score, megaplan), form))}
                             for row, name, callback, score in found]})


@bp.get("/export.csv")
def export():
    """The filtered rows (all pages) as CSV for Excel: «;», UTF-8 with a BOM."""
    filters, tz = _filters(), _time_zone(g.account_id)
    query = _rows(_where(g.account_id, filters, tz)).execution_options(yield_per=1000)
    session = cabinet.db().session

    def lines():
        buffer = io.StringIO()
        out = csv.writer(buffer, delimiter=";")
        out.writerow(["Начало", "Направление", "Виртуальный номер", "Телефон", "Клиент", "Сотрудник",
                      "Итог", "Состояние", "Причина", "Ошибка", "Ответ Мегаплан", "Попыток",
                      "Следующая попытка", "Звонок в Мегаплан", "ID звонка АТС", "Перезвон", "Оценка клиента"])
        yield "\ufeff" + buffer.getvalue()
        now = utcnow()
        for row, name, callback, score in session.execute(query):
            buffer.seek(0)
            buffer.truncate()
            view = _view(row, name, tz, callback, now, score)
            out.writerow([view["started"], view["direction"], row.virtual_number or "", view["phone"],
                          csv_cell(view["client"]), csv_cell(view["employee"]), view["status"], view["state"],
                          csv_cell(row.reason or ""), csv_cell(view["error"]), csv_cell(view["error_details"]),
                          row.attempts, view["next_retry"], row.megaplan_call_id or "", csv_cell(row.call_id),
                          view["callback"] or "", view["rating"]])
            yield buffer.getvalue()

    name = f"megaplan-journal-{timezones.today(tz).isoformat()}.csv"
    return Response(stream_with_context(lines()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.post("/<int:row_id>/retry")
def retry(row_id: int):
    if web_input.db_int(row_id) is None:  # no row has an id the column cannot hold
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    db = cabinet.db()
    row = db.session.get(OutboxEntry, row_id)
    if row is None or row.account_id != g.account_id:
        abort(404)
    if row.kind != OutboxEntry.CALL or row.state not in (OutboxEntry.FAILED, OutboxEntry.PENDING):
        flash("Повторить можно только звонок с ошибкой или ожидающий отправки.", "warning")
    elif _send_again([row]):
        flash("Звонок снова поставлен в очередь на отправку.", "success")
    return redirect(_back_to_journal())


@bp.post("/retry-failed")
def retry_failed():
    """«Повторить все ошибки»: every call of the account that ended in an error, sent again."""
    if not ActionForm().validate_on_submit():
        abort(400)
    rows = cabinet.db().session.execute(select(OutboxEntry).where(
        OutboxEntry.account_id == g.account_id, OutboxEntry.kind == OutboxEntry.CALL,
        OutboxEntry.state == OutboxEntry.FAILED).order_by(OutboxEntry.started_at)
        .limit(RETRY_ALL_LIMIT)).scalars().all()
    if not rows:
        flash("Звонков с ошибкой нет.", "info")
    elif _send_again(rows):
        more = " Остальные — следующим нажатием." if len(rows) == RETRY_ALL_LIMIT else ""
        flash(f"Снова поставлено в очередь звонков: {len(rows)}.{more}", "success")
    return redirect(_back_to_journal())


def _send_again(rows: list[OutboxEntry]) -> bool:
    """A waiting call's next try may be an hour away: «Повторить» sends it now. With Redis
    down nothing changes (False): the button says so instead of promising a send."""
    if not queue_answers():
        flash(REDIS_DOWN + " Звонки не поставлены в очередь заново.", "danger")
        return False
    for row in rows:
        row.state, row.reason, row.next_retry_at = OutboxEntry.PENDING, None, None
    cabinet.db().session.commit()
    for account_id in {row.account_id for row in rows}:
        try:
            queues.wake_writer(account_id)
        except RedisError:  # gone since the ping: the sweep wakes the writer when it is back
            pass
    return True


def _back_to_journal() -> str:
    """The journal page the form was sent from, its filters kept; never another site."""
    journal_url = url_for("megaplan_journal.journal")
    try:
        parts = urlsplit(request.referrer or "")
    except ValueError:
        return journal_url
    if parts.netloc != request.host or parts.path != journal_url or not parts.query:
        return journal_url
    if len(parts.query) > 2000 or not _QUERY.fullmatch(parts.query):
        return journal_url
    return f"{journal_url}?{parts.query}"
