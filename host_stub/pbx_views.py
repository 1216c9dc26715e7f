"""HTTP faces of the simulated PBX: the CRM push endpoint and the call-simulator page."""
from __future__ import annotations

import hmac
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy.exc import InterfaceError, OperationalError
from wtforms import SelectField

from .forms import CallActionForm, IncomingCallForm, OutgoingCallForm, PageForm
from .host import ACCOUNT_NAME, account_required
from .pbx import new_call_id
from .push import PushError, normalize_phone

bp = Blueprint("pbx", __name__)
_DUMMY_TOKEN = "x" * 32


def _host():
    return current_app.extensions["cabinet"]


@bp.post("/pbx/<account_id>/crm")
def push(account_id: str):
    """The URL the account sets as «Адрес вашей CRM» in the MegaFon cabinet."""
    host = _host()
    fields = _push_fields()
    if fields is None:
        return jsonify(error="Invalid parameters: body must be a form or a JSON object"), 400
    try:
        return _accept_push(host, account_id, fields)
    except (OperationalError, InterfaceError):
        # Without its database the cabinet cannot even check the token: say "try later",
        # not "broken". (The real PBX does not resend; reconciliation finds the call.)
        host.db.session.rollback()
        current_app.logger.error("CRM push for %r refused: database unavailable", account_id)
        return jsonify(error="Service temporarily unavailable"), 503


def _accept_push(host, account_id: str, fields: dict):
    # The PBX's side checks the token it pushes with, from its own store: a push the cabinet
    # cannot take (its database down) is still a call the PBX has recorded.
    # A name the cabinet could never have issued is an unknown account, not a database query.
    known = ACCOUNT_NAME.fullmatch(account_id) and host.pbx.store.crm_token(account_id)
    token = str(fields.get("crm_token") or "")
    # Compare even for unknown accounts so timing tells nothing about which names exist.
    # surrogatepass: a lone surrogate (valid JSON, no valid UTF-8) is a wrong token, not a 500
    if not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), (known or _DUMMY_TOKEN).encode()) \
            or not known:
        current_app.logger.warning("CRM push with a bad token for account %r", account_id)
        return jsonify(error="Invalid token"), 401
    try:
        answer = host.pbx.handle_push(account_id, fields)
    except PushError as exc:
        return jsonify(error=f"Invalid parameters: {exc}"), 400
    return jsonify(answer)


@bp.get("/pbx/<account_id>/recordings/<call_id>")
def public_recording(account_id: str, call_id: str):
    """The PBX's public link to a recording: no login, and gone after CABINET_PBX_LINK_DAYS."""
    found = _host().pbx.public_recording(account_id, call_id) if ACCOUNT_NAME.fullmatch(account_id) else None
    if found is None:
        return jsonify(error="Recording not found or link expired"), 404
    return Response(found.chunks, mimetype=found.content_type,
                    headers={"Content-Length": str(found.total_length), "Cache-Control": "no-store"})


def _push_fields() -> dict | None:
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nesting deeper than any PBX sends
            return None
        return data if isinstance(data, dict) else None
    if request.form:
        return request.form.to_dict()
    return None


@bp.route("/simulator/", methods=["GET"])
@account_required
def simulator():
    return _simulator_page(*_call_forms(g.account_id))


def _simulator_page(incoming, outgoing, status: int = 200):
    host = _host()
    account_id = g.account_id
    return render_template(
        "cabinet/simulator.html", incoming=incoming, outgoing=outgoing,
        action_form=CallActionForm(), calls=host.pbx.live_calls(account_id),
        pbx_users=host.pbx.users(account_id),
        loss_form=PushLossForm(percent=str(int(host.pbx.push_loss.get(account_id, 0) * 100))),
        rating_form=_rating_form(account_id),
        journal=host.pbx.journal(account_id), push_words=push_words, HOOK_WORDS=HOOK_WORDS,
        time_zone=ZoneInfo(current_app.config["CABINET_TIME_ZONE"]),
        time_zone_name=ZONE_NAMES.get(current_app.config["CABINET_TIME_ZONE"],
                                      current_app.config["CABINET_TIME_ZONE"])), status


# The simulator's journal names the protocol's commands and the hooks as they are (in code)
# and says in Russian what they mean.
ZONE_NAMES = {"Europe/Moscow": "Москва", "UTC": "UTC"}
EVENT_WORDS = {"INCOMING": "входящий звонок", "OUTGOING": "исходящий звонок", "ACCEPTED": "ответ",
               "COMPLETED": "разговор окончен", "CANCELLED": "отбой", "TRANSFERRED": "перевод"}
HOOK_WORDS = {"call_started": "звонок начался", "call_answered": "ответ", "call_transferred": "перевод",
              "call_ended": "итог звонка", "call_rated": "оценка клиента", "route_request": "кому звонить"}


def push_words(push: str) -> str:
    command, _, rest = (push or "").partition(" ")
    if command == "event":
        return EVENT_WORDS.get(rest, "событие")
    return {"history": "итог звонка", "contact": "кому звонить?", "rating": "оценка клиента"}.get(command, "")


@bp.post("/simulator/incoming")
@account_required
def simulate_incoming():
    host = _host()
    form, other = _call_forms(g.account_id, posted="in")
    if not form.validate_on_submit():
        return _simulator_page(form, other, 400)  # the form keeps what was typed, errors beside it
    call_id = new_call_id()
    common = {"phone": form.phone.data, "diversion": form.virtual_number.data, "callid": call_id}
    logins = form.users.data
    if not _pbx_takes(form, form.phone.data):
        return _simulator_page(form, other, 400)
    if form.ask_route.data:
        answer = host.pbx.handle_push(g.account_id, {"cmd": "contact", **common}, source="simulator")
        if answer.get("responsible") and host.pbx.user(g.account_id, answer["responsible"]):
            logins = [answer["responsible"]]
            flash(f"Интеграция направила звонок: {answer['responsible']}", "info")
    group = "Отдел продаж" if len(logins) > 1 else ""
    for login in logins:
        user = host.pbx.user(g.account_id, login)
        host.pbx.handle_push(g.account_id, {
            "cmd": "event", "type": "INCOMING", "direction": "in", "user": login,
            "ext": user.ext or "", "groupRealName": group, **common}, source="simulator")
    return redirect(url_for("pbx.simulator"))


def _pbx_takes(form, phone: str) -> bool:
    """The number as the PBX would take it; else the error beside the field (the form's own
    checks are looser than the PBX's: 20 digits pass the form, not a phone number)."""
    try:
        normalize_phone(phone)
    except PushError:
        form.phone.errors = [*form.phone.errors, "АТС не примет этот номер: от 3 до 15 цифр"]
        return False
    return True


@bp.post("/simulator/outgoing")
@account_required
def simulate_outgoing():
    host = _host()
    other, form = _call_forms(g.account_id, posted="out")
    if not form.validate_on_submit():
        return _simulator_page(other, form, 400)
    user = host.pbx.user(g.account_id, form.user.data)
    if not _pbx_takes(form, form.phone.data):
        return _simulator_page(other, form, 400)
    host.pbx.handle_push(g.account_id, {
        "cmd": "event", "type": "OUTGOING", "direction": "out", "user": user.login,
        "ext": user.ext or "", "phone": form.phone.data, "diversion": form.virtual_number.data,
        "callid": new_call_id()}, source="simulator")
    return redirect(url_for("pbx.simulator"))


@bp.post("/simulator/action")
@account_required
def simulate_action():
    host = _host()
    form = CallActionForm()
    call = host.pbx.live_call(g.account_id, form.call_id.data or "") if form.validate_on_submit() else None
    if call is None:
        flash("Этот звонок уже завершён.", "warning")
        return redirect(url_for("pbx.simulator"))
    try:
        _act(host, call, form)
    except PushError as exc:  # the form's values go into a PBX push; the parser has the last word
        flash(f"АТС не приняла действие: {exc}", "danger")
    return redirect(url_for("pbx.simulator"))


def _act(host, call, form) -> None:
    action = form.action.data
    if action == "answer":
        login = form.user.data or next(iter(call.rung), "")
        host.pbx.handle_push(g.account_id, {
            "cmd": "event", "type": "ACCEPTED", "direction": call.direction, "user": login,
            "phone": call.client_phone, "diversion": call.virtual_number or "",
            "callid": call.call_id}, source="simulator")
    elif action == "transfer" and call.answered_by and host.pbx.user(g.account_id, form.user.data):
        target = host.pbx.user(g.account_id, form.user.data)
        host.pbx.handle_push(g.account_id, {
            "cmd": "event", "type": "TRANSFERRED", "direction": call.direction,
            "user": target.login, "ext": target.ext or "", "phone": call.client_phone,
            "diversion": call.virtual_number or "", "callid": call.call_id,
            "second_callid": new_call_id()}, source="simulator")
    elif action == "hangup":
        host.pbx.hangup(g.account_id, call.call_id)
    elif action in ("missed", "busy"):
        host.pbx.finish(g.account_id, call.call_id, "missed" if action == "missed" else "Busy",
                        source="simulator")
    else:
        flash("Неизвестное действие.", "warning")


class PushLossForm(PageForm):
    percent = SelectField("Кабинет недоступен: пуши теряются", choices=[
        ("0", "нет, все пуши доходят"), ("30", "теряется 30 % пушей"), ("100", "теряются все пуши")])


class RatingForm(PageForm):
    call_id = SelectField("Звонок")
    score = SelectField("Оценка клиента", choices=[(str(n), str(n)) for n in range(5, 0, -1)])


def _rating_form(account_id: str) -> RatingForm:
    """The last finished calls, for «Оценка клиента» (the PBX's post-call survey)."""
    form = RatingForm()
    seen, choices = set(), []
    for entry in _host().pbx.journal(account_id):
        if str(entry.get("push", "")).startswith("history") and entry["call_id"] not in seen:
            seen.add(entry["call_id"])
            choices.append((entry["call_id"], f"{entry['call_id'][:8]} · {entry.get('user') or '—'}"))
    form.call_id.choices = choices[:10]
    return form


@bp.post("/simulator/rating")
@account_required
def simulate_rating():
    """The client rates a finished call: the PBX's ``cmd=rating`` push, as the survey sends it."""
    form = _rating_form(g.account_id)
    if form.validate_on_submit():
        _host().pbx.handle_push(g.account_id, {"cmd": "rating", "callid": form.call_id.data,
                                               "rating": form.score.data}, source="simulator")
        flash(f"Клиент оценил звонок на {form.score.data} из 5.", "info")
    else:
        flash("Выберите завершённый звонок.", "warning")
    return redirect(url_for("pbx.simulator"))


@bp.post("/simulator/push-loss")
@account_required
def simulate_push_loss():
    form = PushLossForm()
    if form.validate_on_submit():
        share = int(form.percent.data) / 100
        _host().pbx.push_loss[g.account_id] = share
        flash("Пуши доходят до кабинета." if not share else
              f"Кабинет недоступен: теряется {form.percent.data} % пушей. "
              "Интеграция найдёт потерянные звонки сверкой с историей АТС.", "info")
    return redirect(url_for("pbx.simulator"))


def _call_forms(account_id: str, posted: str | None = None):
    """Both call forms; only the one ``posted`` reads the request (the other shows its defaults)."""
    host = _host()
    users = [(u.login, f"{u.name} ({u.ext})") for u in host.pbx.users(account_id)]
    numbers = [(n, n) for n in host.pbx.virtual_numbers(account_id)]
    incoming = IncomingCallForm(prefix="in", **({} if posted == "in" else {"formdata": None}))
    outgoing = OutgoingCallForm(prefix="out", **({} if posted == "out" else {"formdata": None}))
    incoming.users.choices = outgoing.user.choices = users
    incoming.virtual_number.choices = outgoing.virtual_number.choices = numbers
    if posted != "in" and users:
        incoming.users.data = [users[0][0]]  # a call rings someone: the first employee, to start with
    return incoming, outgoing

