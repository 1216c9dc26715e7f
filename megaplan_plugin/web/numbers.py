"""«Номера с несколькими клиентами»: the list the journal and the status panel show, and
«Выбрать», which remembers the client for a number (``calls/clients.py`` uses it from then on:
the popup, the history and routing).
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, flash, g, redirect, request, url_for

from megaplan_plugin import cabinet, phones
from megaplan_plugin.calls import clients, shared_numbers
from megaplan_plugin.models import Settings
from megaplan_plugin.web import not_kept
from megaplan_plugin.web.forms import ActionForm
from megaplan_plugin.web.guard import require_account

bp = Blueprint("megaplan_numbers", __name__, url_prefix="/plugins/megaplan/numbers")
bp.after_request(not_kept)
_NATIONAL = re.compile(r"\d{3,15}")
_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")
SHOWN = 20  # on the journal and the status panel


bp.before_request(require_account)


def for_page(account_id: str) -> dict:
    """What the partial ``megaplan/_shared_numbers.html`` shows."""
    settings = cabinet.db().session.get(Settings, account_id)
    numbers, total = shared_numbers.shared_numbers(cabinet.db().session, account_id,
                                                   settings.credential_id if settings else None, SHOWN)
    return {"numbers": numbers, "total": total, "time_zone": settings.time_zone if settings else None,
            "form": ActionForm()}


@bp.post("/<national>/choose")
def choose(national: str):
    """«Выбрать»: calls of ``national`` go to the client posted as ``contractor_id``."""
    if not _NATIONAL.fullmatch(national):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    contractor_id = request.form.get("contractor_id", "")
    settings = cabinet.db().session.get(Settings, g.account_id)
    if settings is None or settings.credential_id is None or not _ID.fullmatch(contractor_id):
        abort(404)
    try:
        choice = clients.choose_for_number(cabinet.db().session, settings.credential_id, national, contractor_id)
    except LookupError:
        abort(404)
    cabinet.db().session.commit()
    current_app.extensions["megaplan"].routes.forget(g.account_id)
    flash(f"Для номера {phones.display(national)} выбран клиент «{choice.name or contractor_id}»: "
          "звонки с него и на него записываются на этого клиента.", "success")
    return redirect(_back())


def _back() -> str:
    """The page the form was sent from (the journal or the settings), never another site."""
    page = request.form.get("back", "")
    return {"journal": url_for("megaplan_journal.journal"),
            "settings": url_for("megaplan.settings") + "#shared-numbers"}.get(page, url_for("megaplan_journal.journal")
                                                                              + "#shared-numbers")
