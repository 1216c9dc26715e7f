"""The fake Megaplan API v3 (reference §1–5): the routes a telephony integration uses."""
from __future__ import annotations

import hashlib
import socket
import time

from flask import Blueprint, current_app, g, jsonify, request

from megaplan_plugin import phones

from .decisions import BAD_PASSWORD_STATUS, ROUTE_INTERNAL_NUMBER_FIELD
from . import seed
from .schema import schema
from .envelope import ApiError, envelope, error_envelope, paginate, query_params, render
from .state import FIELDS

bp = Blueprint("megaplan_sandbox_api", __name__, url_prefix="/api/v3")
LIVE_FAILURES = {"megaplan_sandbox_api.abstract_contractor_routes", "megaplan_sandbox_api.contractor_comments"}


def _state():
    return current_app.extensions["megaplan_sandbox"]


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return error_envelope(exc.status, exc.message)


@bp.before_request
def _gate():
    state = _state()
    body = request.get_json(silent=True) if request.is_json else None
    state.requests.append((request.method, request.path, body))
    if state.latency:
        time.sleep(state.latency)
    if time.time() < state.outage_until:
        return error_envelope(503, "Service temporarily unavailable")
    fault = state.take_fault(request.path)
    if fault and not fault["in_body"]:
        body, status = error_envelope(fault["status"], "Injected failure")
        if fault.get("retry_after") is not None:
            body.headers["Retry-After"] = str(fault["retry_after"])
        return body, status
    if fault:
        return jsonify({"meta": {"status": fault["status"], "errors": [{"message": "Internal error"}]},
                        "data": None}), 200
    if request.path == "/api/v3/auth/access_token":
        return None
    header = request.headers.get("Authorization", "")
    g.employee_id = state.user_of(header[7:]) if header.startswith("Bearer ") else None
    if g.employee_id is None:
        return error_envelope(401, "Unauthorized: access token missing, expired or revoked")
    if request.endpoint in LIVE_FAILURES:
        return None  # these fail on live accounts whatever is sent (reference §6): so here too
    violations = schema().check_request(request.method, request.path,
                                        query_params() if request.method == "GET" else None, body)
    if violations:
        state.schema_violations += [(request.method, request.path, str(v)) for v in violations]
        return jsonify({"meta": {"status": 422, "errors": [
            {"fieldName": v.field, "message": v.message} for v in violations]}, "data": None}), 422
    return None


class AnswerLost(ConnectionAbortedError):
    """Raised out of the WSGI app once the connection is dropped on purpose. Werkzeug's server
    treats a ConnectionError from the app as a client gone away: it writes nothing and logs
    nothing, and its next read on the shut socket ends the connection."""


def lose_answers(wsgi_app, state):
    """WSGI middleware for ``SandboxState.lose_answers_next``: a matching API request runs in
    full (so the create or update happens), then its answer is thrown away and the connection
    dropped. It wraps the whole Flask app because only an exception past Flask reaches the
    server; inside Flask (``after_request``) it would become a 500. Only ``/api/v3/`` paths
    qualify, so the control endpoints stay reachable whatever the prefix."""
    def app(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        if not path.startswith("/api/v3/") or not state.may_lose_answer(method, path):
            return wsgi_app(environ, start_response)
        # The server sends nothing before the first body byte (PEP 3333), so the status and
        # headers Flask hands to start_response here can still be withheld.
        answer = wsgi_app(environ, start_response)
        try:
            body = b"".join(answer)
        finally:
            if hasattr(answer, "close"):
                answer.close()
        fault = state.take_lost_answer(method, path)  # taken after the view: it did its work
        if fault is None:
            return [body]  # someone else used the last one meanwhile
        if fault["delay"]:
            time.sleep(fault["delay"])
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # FIN now: the client reads EOF, not a status line
            except OSError:
                pass  # the client gave up and closed first (after its own timeout)
        raise AnswerLost(f"answer to {method} {path} lost on purpose")
    return app


@bp.post("/auth/access_token")
def access_token():
    state = _state()
    form = request.form
    grant = form.get("grant_type")
    state.grants.append(grant)
    if grant == "password":
        login = state.logins.get(form.get("username", ""))
        if login is None or login[0] != form.get("password"):
            return jsonify(error="invalid_grant", error_description="Invalid username or password"), BAD_PASSWORD_STATUS
        return jsonify(state.issue_tokens(login[1]))
    if grant == "refresh_token":
        tokens = state.rotate(form.get("refresh_token", ""))
        if tokens is None:
            return jsonify(error="invalid_grant", error_description="Invalid refresh token"), 400
        return jsonify(tokens)
    return jsonify(error="unsupported_grant_type", error_description="Unknown grant_type"), 400


def _body(content_type: str | None = None) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, "Request body must be a JSON object")
    if content_type:
        if body.get("contentType") != content_type:
            raise ApiError(422, f"contentType must be {content_type}")
        unknown = set(body) - FIELDS[content_type] - {"contentType", "id"}
        if unknown:
            raise ApiError(422, f"{content_type} have not this fields: {', '.join(sorted(unknown))}")
    return body


def _list(items: list):
    params = query_params()
    page, pagination = paginate(items, params)
    data, included = render(_state(), page, collection=True, fields=params.get("fields"),
                            only=bool(params.get("onlyRequestedFields")))
    return envelope(data, pagination=pagination, included=included)


def _found(entity: dict | None) -> dict:
    if entity is None:
        raise ApiError(404, "Entity not found")
    return entity


def _one(entity: dict | None):
    if entity is None:
        raise ApiError(404, "Entity not found")
    data, included = render(_state(), entity)
    return envelope(data, included=included)


@bp.get("/currentUser")
def current_user():
    return _one(_state().employees.get(g.employee_id))


@bp.get("/employee")
def employees():
    return _list(list(_state().employees.values()))  # `filter` and `q` are ignored, as live


@bp.get("/todoCategory")
def todo_categories():
    return _list([{"contentType": "TodoCategory", "id": c_id, "name": name, "masterType": master}
                  for c_id, name, master in seed.TODO_CATEGORIES])


@bp.get("/employee/me")
def employee_me():
    raise ApiError(405, "Method not allowed")


@bp.get("/employee/<employee_id>")
def employee(employee_id):
    return _one(_state().employees.get(employee_id))


@bp.route("/callUserConfig", methods=["GET", "POST"])
def call_user_configs():
    state = _state()
    if request.method == "GET":
        return _list(list(state.call_user_configs.values()))
    body = _body("CallUserConfig")
    employee_id = str((body.get("employee") or {}).get("id", ""))
    if employee_id not in state.employees:
        raise ApiError(422, "employee not found")
    state.set_internal_number(employee_id, body.get("internalNumber"))
    return _one(next(c for c in state.call_user_configs.values() if c["employee"]["id"] == employee_id))


@bp.route("/callUserConfig/Employee/<employee_id>", methods=["GET", "DELETE"])
def call_user_config_of(employee_id):
    state = _state()
    config = next((c for c in state.call_user_configs.values() if c["employee"]["id"] == employee_id), None)
    if request.method == "DELETE" and config is not None:
        state.remove_call_user_config(employee_id)
        return envelope(None)
    return _one(config)


@bp.get("/callRoute")
def call_route():
    state = _state()
    phone = str(query_params().get("phone") or "")
    if not phones.digits(phone):
        raise ApiError(422, "phone is required")
    with state.lock:
        clients = state.contractors_with_phone(phone)
        staff = [e for e in state.employees.values()
                 if any(phones.digits(i.get("value", "")) == phones.digits(phone) for i in e.get("contactInfo") or [])]
        responsible_ids = []
        for client in clients:
            for ref in client.get("responsibles") or []:
                if ref["id"] not in responsible_ids:
                    responsible_ids.append(ref["id"])
        employees = []
        for employee_id in responsible_ids:
            employee = dict(state.employees[employee_id])
            if ROUTE_INTERNAL_NUMBER_FIELD:
                employee[ROUTE_INTERNAL_NUMBER_FIELD] = state.internal_number_of(employee_id)
            employees.append(employee)
    route = {"contentType": "CallRoute", "type": "responsible", "timeout": 20,
             "employees": employees,
             "users": [{"contentType": c["contentType"], "id": c["id"]} for c in clients + staff]}
    data, included = render(state, route)
    return envelope(data, included=included)


@bp.get("/contractorCompany/search")
def contractor_search():
    state = _state()
    q = str(query_params().get("q") or "").strip()
    digits = phones.digits(q)
    with state.lock:
        if len(digits) >= 5:
            found = state.contractors_with_phone(q)
        else:
            found = [c for c in state.contractors.values() if q and q.lower() in c.get("name", "").lower()]
    return _list(found)


@bp.get("/contractor/search")
@bp.get("/contractor/<contractor_id>/todos")
@bp.get("/contractor/<contractor_id>/history")
def abstract_contractor_routes(contractor_id=None):
    raise ApiError(500, "Internal server error")  # pitfall 4: abstract routes fail live


@bp.route("/<any(contractorHuman, contractorCompany, contractor):kind>/<entity_id>/comments",
          methods=["GET", "POST"])
def contractor_comments(kind, entity_id):
    raise ApiError(500, "Internal server error")  # pitfall 5: contractor comments fail live


@bp.post("/bulk/getEntitiesByLinks")
def entities_by_links():
    state = _state()
    body = request.get_json(silent=True)
    if not isinstance(body, list):
        raise ApiError(422, "Request body must be a JSON array of links")
    if any(isinstance(l, dict) and l.get("contentType") == "Employee" for l in body):
        raise ApiError(500, "Internal server error")  # pitfall 15: Employee links 500 live
    found = [state.find(l.get("contentType", ""), str(l.get("id"))) for l in body
             if isinstance(l, dict) and l.get("contentType") in ("ContractorHuman", "ContractorCompany")]
    data, included = render(state, [f for f in found if f])
    return envelope(data, included=included)


@bp.get("/contractor/<contractor_id>")
def contractor(contractor_id):
    return _one(_state().contractors.get(contractor_id))


@bp.route("/<any(contractorHuman, contractorCompany):kind>", methods=["GET", "POST"])
def contractors(kind):
    content_type = kind[0].upper() + kind[1:]
    state = _state()
    if request.method == "GET":
        return _list([c for c in state.contractors.values() if c["contentType"] == content_type])
    body = _body(content_type)
    if content_type == "ContractorCompany" and not body.get("name"):
        raise ApiError(422, "name is required")
    return _one(state.create(content_type, body))


@bp.route("/<any(contractorHuman, contractorCompany):kind>/<entity_id>", methods=["GET", "POST"])
def contractor_card(kind, entity_id):
    content_type = kind[0].upper() + kind[1:]
    state = _state()
    entity = state.find(content_type, entity_id)
    if entity is None:
        raise ApiError(404, "Entity not found")
    if request.method == "POST":
        with state.lock:
            entity.update({k: v for k, v in _body(content_type).items() if k != "id"})
    return _one(entity)


@bp.route("/deal", methods=["GET", "POST"])
def deals():
    state = _state()
    if request.method == "GET":
        return _list(list(state.deals.values()))  # `filter`, `status` and `q` are ignored here
    body = _body("Deal")
    return _one(_save_deal(state, state.create("Deal", body), body))


@bp.route("/deal/<deal_id>", methods=["GET", "POST"])
def deal_card(deal_id):
    state = _state()
    deal = state.find("Deal", deal_id)
    if deal is None:
        raise ApiError(404, "Entity not found")
    if request.method == "POST":
        body = _body("Deal")
        with state.lock:
            deal.update({k: v for k, v in body.items() if k != "id"})
        _save_deal(state, deal, body)
    return _one(deal)


def _save_deal(state, deal: dict, body: dict) -> dict:
    with state.lock:
        deal.setdefault("result", "active")
        deal["timeUpdated"] = {"contentType": "DateTime", "value": _now()}
    return deal


@bp.get("/contractor/<contractor_id>/deals")
def contractor_deals(contractor_id):
    state = _state()
    if contractor_id not in state.contractors:
        raise ApiError(404, "Entity not found")
    return _list([d for d in state.deals.values() if (d.get("contractor") or {}).get("id") == contractor_id])


def _widget(call: dict) -> None:
    employees = [u["id"] for u in (call.get("toUser"), call.get("fromUser"))
                 if isinstance(u, dict) and u.get("contentType") == "Employee"]
    _state().widget_events.append({"call_id": call["id"], "providerId": call.get("providerId"),
                                   "state": call.get("state"), "type": call.get("type"),
                                   "employees": employees})


@bp.route("/callInfo", methods=["GET", "POST"])
def calls():
    state = _state()
    if request.method == "GET":
        return _list(list(state.calls.values()))
    body = _body("CallInfo")
    body.setdefault("state", "calling")
    call = state.create("CallInfo", body)
    _widget(call)
    return _one(call)


@bp.route("/callInfo/provider", methods=["GET", "POST"])
def call_by_provider():
    state = _state()
    if request.method == "GET":
        provider_id = query_params().get("providerId")
        return _one(_latest_with_provider(provider_id))
    body = _body("CallInfo")
    if not body.get("providerId"):
        raise ApiError(422, "providerId is required")
    call = _latest_with_provider(body["providerId"])
    if call is None:
        raise ApiError(404, "Call with this providerId not found")
    with state.lock:
        call.update({k: v for k, v in body.items() if k != "id"})
    _widget(call)
    return _one(call)


def _latest_with_provider(provider_id):
    if provider_id in (None, ""):
        raise ApiError(422, "providerId is required")
    matches = [c for c in _state().calls.values() if str(c.get("providerId")) == str(provider_id)]
    return max(matches, key=lambda c: int(c["id"])) if matches else None


@bp.route("/callInfo/history", methods=["GET", "POST"])
def call_history():
    state = _state()
    if request.method == "GET":
        return _list([c for c in state.calls.values() if c.get("state") == "finished"])
    body = request.get_json(silent=True)
    if not isinstance(body, list):
        raise ApiError(422, "Request body must be a JSON array of CallInfo")
    saved = []
    for item in body:
        if not isinstance(item, dict) or item.get("contentType") != "CallInfo":
            raise ApiError(422, "contentType must be CallInfo")
        unknown = set(item) - FIELDS["CallInfo"] - {"contentType", "id"}
        if unknown:
            raise ApiError(422, f"CallInfo have not this fields: {', '.join(sorted(unknown))}")
    for item in body:
        existing = _latest_with_provider(item["providerId"]) if item.get("providerId") else None
        with state.lock:
            if existing is not None:
                existing.update({k: v for k, v in item.items() if k != "id"})
                existing["state"] = "finished"
                saved.append(existing)
            else:
                saved.append(state.create("CallInfo", {**item, "state": "finished"}))
    data, included = render(state, saved)
    return envelope(data, included=included)


@bp.route("/callInfo/<call_id>", methods=["GET", "POST"])
def call_card(call_id):
    state = _state()
    call = _found(state.calls.get(call_id))
    if request.method == "POST":
        with state.lock:
            call.update({k: v for k, v in _body("CallInfo").items() if k != "id"})
        _widget(call)
    return _one(call)


@bp.post("/callInfo/<call_id>/setContractor")
def set_contractor(call_id):
    state = _state()
    call = state.calls.get(call_id)
    body = _body()
    contractor = state.find(body.get("contentType", ""), str(body.get("id"))) \
        if body.get("contentType") in ("ContractorHuman", "ContractorCompany") else None
    if call is None or contractor is None:
        raise ApiError(404, "Entity not found")
    ref = {"contentType": contractor["contentType"], "id": contractor["id"]}
    with state.lock:
        call["fromUser" if call.get("type") in ("in", "miss") else "toUser"] = ref
        for todo in state.todos.values():
            if todo.get("call") == call_id:
                todo["relations"] = [ref]
    return _one(call)


@bp.route("/callInfo/<call_id>/todos", methods=["GET", "POST"])
def call_todos(call_id):
    state = _state()
    if call_id not in state.calls:
        raise ApiError(404, "Entity not found")
    if request.method == "GET":
        return _list([t for t in state.todos.values() if t.get("call") == call_id])
    todo = _create_todo(_body("Todo"))
    todo["call"] = call_id
    return _one(todo)


def _create_todo(body: dict) -> dict:
    if not body.get("name"):
        raise ApiError(422, "name is required")
    return _state().create("Todo", body)


@bp.post("/todo")
def create_todo():
    return _one(_create_todo(_body("Todo")))


@bp.post("/todo/<todo_id>/doAction")
def todo_action(todo_id):
    state = _state()
    todo = _found(state.todos.get(todo_id))
    body = request.get_json(silent=True)  # one of the six action requests: the schema checked it
    if body.get("contentType") == "TodoFinishActionRequest":
        with state.lock:
            todo["timeFinished"] = {"contentType": "DateTime", "value": _now()}
            if body.get("resultText"):  # Megaplan saves it as the todo's result comment
                todo["resultComment"] = _comment(todo_id, body["resultText"])
                todo.setdefault("comments", []).append(todo["resultComment"])
    elif body.get("contentType") == "TodoRenewActionRequest":
        with state.lock:
            todo.pop("timeFinished", None)
    return _one(todo)


def _comment(todo_id: str, content) -> dict:
    return {"contentType": "Comment", "id": _state().next_id("Comment"), "content": str(content),
            "subject": {"contentType": "Todo", "id": todo_id}}


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@bp.route("/todo/<todo_id>/comments", methods=["GET", "POST"])
def todo_comments(todo_id):
    state = _state()
    todo = _found(state.todos.get(todo_id))
    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("content"):
            raise ApiError(422, "content is required")  # the field is `content`, not `text`
        with state.lock:
            todo.setdefault("comments", []).append(_comment(todo_id, body["content"]))
    return envelope(list(todo.get("comments", [])))


@bp.post("/todo/<todo_id>/participants")
def todo_participants(todo_id):
    """Adds one participant (a second add of the same employee changes nothing)."""
    state = _state()
    todo = _found(state.todos.get(todo_id))
    subject = _body().get("subject")  # the schema checked it is a Participant
    if not isinstance(subject, dict):
        raise ApiError(422, "subject is required")
    with state.lock:
        present = todo.setdefault("participants", [])
        if not any((p.get("subject") or {}).get("id") == subject.get("id") for p in present):
            present.append({"contentType": "Participant", "subject": subject})
        return envelope(list(present))


@bp.route("/todo/<todo_id>", methods=["GET", "POST"])
def todo(todo_id):
    state = _state()
    if request.method == "POST":
        body = _body("Todo")
        if str(body.get("id")) != todo_id:
            return _one(_create_todo(body))  # pitfall 9: no id in the body makes a new todo
        existing = state.todos.get(todo_id)
        if existing is None:
            raise ApiError(404, "Entity not found")
        with state.lock:
            existing.update({k: v for k, v in body.items() if k != "id"})
        return _one(existing)
    return _one(state.todos.get(todo_id))


# -- uploads: outside /api/v3, as the public SDK does it (reference §3.6) -------------------------
files_bp = Blueprint("megaplan_sandbox_files", __name__, url_prefix="/api")


@files_bp.post("/file")
def upload():
    """Multipart part `files[]`; answers the Files made, `data[0]` first. Only a digest of each
    file is kept, so tests can compare without the sandbox holding recordings in memory."""
    state = _state()
    header = request.headers.get("Authorization", "")
    if state.user_of(header[7:] if header.startswith("Bearer ") else "") is None:
        return error_envelope(401, "Unauthorized: access token missing, expired or revoked")
    fault = state.take_fault(request.path)
    if fault:
        return error_envelope(fault["status"], "Injected failure")
    made = []
    for upload in request.files.getlist("files[]"):
        digest, size = hashlib.sha256(), 0
        while chunk := upload.stream.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        file = {"contentType": "File", "id": state.next_id("File"), "name": upload.filename,
                "mimeType": upload.mimetype, "size": size, "sha256": digest.hexdigest()}
        with state.lock:
            state.files[file["id"]] = file
        made.append(file)
    if not made:
        return error_envelope(422, "files[] is required")
    return envelope(made)
