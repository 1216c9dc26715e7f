"""The sync journal (Russian): every call of the account with its state in Megaplan."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from megaplan_plugin import cabinet
from megaplan_plugin.web import inputs as web_input
from megaplan_plugin.delivery import queues
from megaplan_plugin.web.forms import ActionForm
from megaplan_plugin.models import OutboxEntry

bp = Blueprint("megaplan_journal", __name__, url_prefix="/plugins/megaplan/journal")
PAGE_SIZE = 100
_QUERY = re.compile(r"[A-Za-z0-9_.~%=&+-]+")  # a filter query as the browser encodes it
STATUS_TITLES = {
    "answered": "отвечен", "missed": "пропущен", "busy": "занято", "cancelled": "отменён",
    "unavailable": "недоступен", "not_allowed": "запрещён", "not_found": "номер не найден",
    "failed": "ошибка АТС",
}


@bp.before_request
def require_account():
    from megaplan_plugin.web.settings import require_account as settings_guard
    return settings_guard()


@bp.route("/")
def journal():
    state = request.args.get("state", "")
    if state and state not in OutboxEntry.STATE_TITLES:
        flash("Неизвестное состояние: фильтр по состоянию не применён.", "warning")
        state = ""
    try:
        day = web_input.day(request.args.get("date", ""))
    except web_input.InvalidInput as exc:
        flash(f"{exc.message}. Фильтр по дате не применён.", "warning")
        day = None
    query = select(OutboxEntry).where(OutboxEntry.account_id == g.account_id, OutboxEntry.kind == OutboxEntry.CALL)
    if state:
        query = query.where(OutboxEntry.state == state)
    if day is not None:
        start = datetime.combine(day, time.min, tzinfo=timezone.utc)
        query = query.where(OutboxEntry.started_at >= start, OutboxEntry.started_at < start + timedelta(days=1))
    rows = cabinet.db().session.execute(query.order_by(OutboxEntry.started_at.desc()).limit(PAGE_SIZE)).scalars().all()
    return render_template("megaplan/journal.html", rows=rows, state=state,
                           day=day.isoformat() if day else "", states=OutboxEntry.STATE_TITLES,
                           statuses=STATUS_TITLES, action_form=ActionForm())


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
    else:
        # A waiting call's next try may be an hour away: «Повторить» sends it now.
        row.state, row.reason, row.next_retry_at = OutboxEntry.PENDING, None, None
        db.session.commit()
        queues.enqueue_call(row.account_id, row.call_id, replace=True)
        flash("Звонок снова поставлен в очередь на отправку.", "success")
    return redirect(_back_to_journal())


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
