"""The sandbox's own pages: what it received (for people) and fault injection (for tests)."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from . import seed

bp = Blueprint("megaplan_sandbox_page", __name__, template_folder="templates")


def _state():
    return current_app.extensions["megaplan_sandbox"]


# Megaplan's own values, as its interface says them in Russian
WORDS = {"in": "входящий", "out": "исходящий", "miss": "пропущенный", "fail": "неудачный исходящий",
         "calling": "звонит", "talking": "разговор", "finished": "завершён"}
MOSCOW = ZoneInfo("Europe/Moscow")  # as the cabinet's pages show times by default


def _local(value) -> str:
    """An ISO time as Moscow reads it, e.g. «05.12.2026 14:03:07»."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M:%S")


@bp.get("/crm/<entity_id>/card/")
@bp.get("/deals/<entity_id>/card/")
@bp.get("/event/<entity_id>/card/")
def card(entity_id):
    """Megaplan's web pages of a client, a deal and a todo (the plugin's journal links to
    them): here, the row of the sandbox's page."""
    kind = request.path.split("/")[1]
    anchor = {"crm": "contractor", "deals": "deal", "event": "todo"}[kind]
    return redirect(url_for(".index") + f"#{anchor}-{entity_id}")


@bp.get("/")
def index():
    state = _state()
    with state.lock:
        calls = sorted(state.calls.values(), key=lambda c: int(c["id"]), reverse=True)[:100]
        contractors = sorted(state.contractors.values(), key=lambda c: c["id"], reverse=True)
        todos = sorted(state.todos.values(), key=lambda t: int(t["id"]), reverse=True)[:100]
        deals = sorted(state.deals.values(), key=lambda d: int(d["id"]), reverse=True)[:100]
        events = list(reversed(state.widget_events[-50:]))
        employees = dict(state.employees)
    def who(ref: dict) -> str:
        """A link as people read it: the employee's or client's name, not «ContractorHuman 2000003»."""
        entity = state.find(ref.get("contentType", ""), str(ref.get("id"))) or {}
        name = entity.get("name") or " ".join(
            str(entity[k]) for k in ("lastName", "firstName") if entity.get(k))
        return name or f"{ref.get('contentType')} {ref.get('id')}"

    return render_template("megaplan_sandbox/index.html", calls=calls, contractors=contractors, who=who,
                           words=WORDS, local=_local,
                           todos=todos, deals=deals, events=events, employees=employees, login=seed.LOGIN,
                           url=request.host_url.rstrip("/"), app_settings=state.telephony_app,
                           callers=[e for e in employees.values() if state.internal_number_of(e["id"])])


@bp.get("/_sandbox/state")
def dump():
    return jsonify(_state().dump())


@bp.post("/_sandbox/faults")
def faults():
    """JSON: fail_next + status + path_prefix (+ retry_after: seconds, sent as Retry-After),
    ok_with_error_next, latency_ms, outage_seconds, revoke_tokens, expire_access_tokens, reset.

    ``lose_answers_next: n`` (+ optional ``path_prefix``, ``method`` default "POST", null for
    any, and ``answer_delay`` in seconds): the next n matching ``/api/v3/`` requests are
    handled as usual (the entity is created or updated), then the connection is closed with
    no answer, at once (the client sees a disconnect) or after ``answer_delay`` (a client with
    a shorter read timeout sees a timeout). ``GET /_sandbox/state`` counts ``lost_answers``.
    A ``path_prefix`` given here applies to ``fail_next`` too."""
    state = _state()
    body = request.get_json(silent=True) or {}
    if body.get("reset"):
        state.reset()
    if body.get("fail_next"):
        retry_after = body.get("retry_after")
        state.fail_next(int(body["fail_next"]), int(body.get("status", 500)), body.get("path_prefix"),
                        int(retry_after) if retry_after is not None else None)
    if body.get("lose_answers_next"):
        delay = body.get("answer_delay")
        state.lose_answers_next(int(body["lose_answers_next"]), body.get("path_prefix"),
                                body.get("method", "POST"), float(delay) if delay else None)
    if body.get("ok_with_error_next"):
        state.ok_with_error_next(int(body["ok_with_error_next"]))
    if "latency_ms" in body:
        state.set_latency(float(body["latency_ms"]))
    if body.get("outage_seconds"):
        state.outage(float(body["outage_seconds"]))
    if body.get("revoke_tokens"):
        state.revoke_tokens()
    if body.get("expire_access_tokens"):
        state.expire_access_tokens()
    return jsonify(ok=True)
