"""Megaplan's own schema is the judge (issue 24): the sandbox refuses what it forbids, and what
the plugin sends passes it.

The checker (host_stub/megaplan_sandbox/schema.py) reads a copy of Megaplan's RAML condensed to
the types and routes the plugin touches. Every sandbox of the suite runs it on every request
(the ``megaplan_sandbox`` fixture fails a test whose requests broke it); here each kind of
violation is refused through HTTP, each payload builder's output passes it, and a full
scenario's capture (``MEGAPLAN_CAPTURE_FILE``) replays through it with no violation.
"""
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from host_stub.megaplan_sandbox.schema import check_capture, schema
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD, post_form
from megaplan_plugin.megaplan import MegaplanClient, unconfirmed
from megaplan_plugin.megaplan.values import contact_phone, datetime_value, link


# -- the sandbox refuses each kind of violation with 422, naming the field ----------------------

def _token(sandbox) -> str:
    return MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD).access_token().access_token


def _refused(sandbox, method: str, path: str, body=None, query=None) -> dict:
    url = sandbox.url + "/api/v3" + path
    if query is not None:
        url += "?" + json.dumps(query)
    response = requests.request(method, url, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {_token(sandbox)}"})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["meta"]["status"] == 422 and answer["data"] is None
    sandbox.state.schema_violations.clear()  # refused on purpose: not the plugin's
    return answer["meta"]["errors"][0]


def test_an_unknown_property_is_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "POST", "/callInfo", {"contentType": "CallInfo", "duration": 5})
    assert error["fieldName"] == "body.duration" and "CallInfo has no property" in error["message"]


def test_a_value_of_the_wrong_json_type_is_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "POST", "/callInfo", {"contentType": "CallInfo", "fromPhone": 79161234567})
    assert error["fieldName"] == "body.fromPhone" and "not assignable to string" in error["message"]


def test_a_value_outside_the_enum_is_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "POST", "/callInfo", {"contentType": "CallInfo", "state": "ringing"})
    assert error["fieldName"] == "body.state" and "'ringing' is not one of" in error["message"]


def test_a_create_without_a_required_property_is_refused(megaplan_sandbox):
    call = megaplan_sandbox.state.create("CallInfo", {"contentType": "CallInfo", "providerId": "x"})
    error = _refused(megaplan_sandbox, "POST", f"/callInfo/{call['id']}/todos",
                     {"contentType": "Todo", "description": "no name"})
    assert error == {"fieldName": "body.name", "message": "required by Todo"}


def test_a_union_member_or_link_of_the_wrong_type_is_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "POST", "/callInfo",
                     {"contentType": "CallInfo", "fromUser": {"contentType": "Todo", "id": "1"}})
    assert error["fieldName"] == "body.fromUser.contentType"
    assert "Todo is not assignable to ContractorCompany|ContractorHuman|Employee" in error["message"]
    call = megaplan_sandbox.state.create("CallInfo", {"contentType": "CallInfo", "providerId": "y"})
    error = _refused(megaplan_sandbox, "POST", f"/callInfo/{call['id']}/todos", {
        "contentType": "Todo", "name": "x", "participants": [{"contentType": "Employee", "id": "1000002"}]})
    assert error["fieldName"] == "body.participants[0].contentType"  # a Participant, not an employee link


def test_fields_a_type_lacks_are_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "GET", "/contractorCompany", query={"fields": ["name", "firstName"]})
    assert error["fieldName"] == "query.fields[1]" and "'firstName'" in error["message"]


def test_sorting_by_a_field_that_is_not_sortable_is_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "GET", "/contractorHuman",
                     query={"sortBy": [{"contentType": "SortField", "fieldName": "id", "desc": True}]})
    assert error["fieldName"] == "query.sortBy[0].fieldName" and "not sortable" in error["message"]


def test_an_unknown_query_parameter_and_a_non_integer_path_id_are_refused(megaplan_sandbox):
    error = _refused(megaplan_sandbox, "GET", "/callRoute", query={"phone": "79161234567", "number": "1"})
    assert error["fieldName"] == "query.number"
    error = _refused(megaplan_sandbox, "POST", "/callInfo/abc", {"contentType": "CallInfo"})
    assert error["fieldName"] == "path.id"


# -- every payload builder passes the schema -----------------------------------------------------

def _passes(method: str, path: str, body=None, query=None):
    assert schema().check_request(method, path, query, body) == []


def test_the_clients_payloads_pass_megaplans_schema():
    from megaplan_plugin.calls import sync
    from megaplan_plugin.calls.sync import CallOwner
    now = datetime.now(timezone.utc)
    record = {"call_id": "P-1", "direction": "in", "client_phone": "79161234567", "status": "missed",
              "started_at": now.isoformat(), "duration_seconds": 20, "wait_seconds": 20,
              "recording_url": None}
    owner = CallOwner(employee_id=None, responsible_id="1000002", reason="no_employee")
    contractor = {"contentType": "ContractorHuman", "id": "2000001"}
    todo = sync.communication_fields(record, owner, contractor, missed_by=["1000002", "1000003", "1000004"])
    assert todo["participants"][0] == {"contentType": "Participant", "subject": link("Employee", "1000003")}
    _passes("POST", "/api/v3/callInfo/4000001/todos", todo)
    _passes("POST", "/api/v3/todo/5000001/doAction", unconfirmed.todo_finish_action("Закрыто"))
    _passes("POST", "/api/v3/callUserConfig", {"contentType": "CallUserConfig",
                                                "employee": link("Employee", "1000002"), "internalNumber": "101"})
    _passes("POST", "/api/v3/contractorHuman", {
        "contentType": "ContractorHuman", "firstName": "Клиент", "lastName": "79161234567",
        "contactInfo": [contact_phone("79161234567")], "responsibles": [link("Employee", "1000002")]})
    _passes("POST", "/api/v3/callInfo", {"contentType": "CallInfo", "providerId": "P-1", "type": "in",
                                          "state": "calling", "timeFrom": datetime_value(now), "fromPhone": "79161234567"})
    for kind in ("contractorHuman", "contractorCompany"):
        _passes("GET", f"/api/v3/{kind}", query={"fields": unconfirmed.CONTRACTOR_FIELDS[kind], "limit": 100})
    _passes("GET", unconfirmed.CONTRACTOR_SEARCH_PATH,
            query={"q": "79161234567", "limit": 10, "fields": unconfirmed.CONTRACTOR_FIELDS["search"]})


@pytest.mark.parametrize("direction,status", [("in", "answered"), ("in", "missed"), ("out", "answered"),
                                              ("out", "busy")])
@pytest.mark.parametrize("contractor", [None, {"contentType": "ContractorCompany", "id": "3000001"}])
def test_call_info_builders_pass_megaplans_schema(direction, status, contractor):
    from megaplan_plugin.calls import sync
    from megaplan_plugin.calls.sync import CallOwner
    now = datetime.now(timezone.utc)
    user = {"login": "ivanov", "name": "Иван Иванов", "ext": "101", "telnum": None}
    owner = CallOwner(employee_id="1000002", responsible_id="1000002", reason="mapped")
    event = {"call_id": "P-2", "direction": direction, "client_phone": "79161234567",
             "virtual_number": "74950000001", "user": user, "at": now.isoformat()}
    for state in ("calling", "talking"):
        _passes("POST", "/api/v3/callInfo", sync.popup_fields(event, owner, state, contractor))
        _passes("POST", "/api/v3/callInfo/4000001", sync.popup_fields(event, owner, state, contractor))
    record = {**event, "status": status, "started_at": now.isoformat(), "duration_seconds": 30,
              "wait_seconds": 5, "recording_url": "https://records.example/p-2.mp3"}
    finished = sync.history_fields(record, owner, contractor)
    _passes("POST", "/api/v3/callInfo/history", [finished, finished])
    _passes("POST", "/api/v3/callInfo/4000001", finished)
    _passes("POST", "/api/v3/callInfo/provider", finished)
    todo = sync.communication_fields(record, owner, contractor, category_id="1")
    _passes("POST", "/api/v3/callInfo/4000001/todos", todo)


# -- a full scenario's capture replays with no violation ----------------------------------------

@pytest.fixture
def app_config(tmp_path):
    return {"MEGAPLAN_CAPTURE_FILE": str(tmp_path / "capture.jsonl")}


def _api(configured, app):
    response = post_form(configured, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    secret = re.search(r'id="new-secret">([^<]+)<', configured.get(response.location).text).group(1)
    from megaplan_plugin.models import Settings
    with app.app_context():
        key = app.extensions["cabinet"].db.session.get(Settings, "demo").api_key
    return key, {"Authorization": f"Bearer {secret}"}


def test_a_full_scenario_sends_megaplan_nothing_its_schema_forbids(
        app, integration, pbx, rq_worker, megaplan_sandbox, client):
    state = megaplan_sandbox.state
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    sidorov = next(e for e in state.employees if state.internal_number_of(e) == "103")
    state.remove_call_user_config(sidorov)
    configured = integration()
    assert configured.post("/plugins/megaplan/employees/refresh").status_code == 302
    integration(create_client_on_incoming="y", create_contact_on_outgoing="y",
                create_communication="y", route_to_manager="y", **{"link-sidorov": sidorov})
    rq_worker()  # the client index and the callUserConfig write
    # an unknown number calls, is answered after a transfer; then calls again (known now)
    first = pbx.new_call(phone="79165550001")
    first.contact()
    first.ring("ivanov").answer("ivanov")
    first._push(cmd="event", type="TRANSFERRED", user="petrova", direction="in", second_callid="T-1")
    first.history(status="Success", user="petrova", duration=60, link="https://records.example/1.mp3")
    again = pbx.new_call(phone="79165550001")
    again.contact()
    again.ring("petrova").answer("petrova").history(status="Success", user="petrova", duration=30)
    # a group call nobody answered: a «Перезвонить» todo for both; then the client is called back
    missed = pbx.new_call(phone="79165550002")
    missed.ring("petrova", "ivanov")
    missed.history(status="missed", user="pbx", duration=20, wait="20")
    rq_worker()
    back = pbx.new_call(phone="79165550002", direction="out")
    back.ring("ivanov").answer("ivanov").history(status="Success", user="ivanov", duration=40)
    # an outgoing call to a new number; Megaplan failing twice on the way
    state.fail_next(2, 500, path_prefix="/api/v3/")
    out = pbx.new_call(phone="79165550003", direction="out")
    out.ring("sidorov").answer("sidorov").history(status="Success", user="sidorov", duration=15)
    rq_worker()
    # click-to-call from Megaplan and «Завершить»
    key, headers = _api(configured, app)
    answer = client.post(f"/plugins/megaplan/api/{key}/call", headers=headers,
                         json={"phone": "79165550004", "internal_number": "101"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert client.post(f"/plugins/megaplan/api/{key}/hangup", headers=headers,
                       json={"call_id": answer.get_json()["call_id"]}).status_code == 200
    # a push the cabinet never got, found by reconciliation
    app.extensions["cabinet"].pbx.push_loss["demo"] = 1.0
    pbx.new_call(phone="79165550005").history(status="Success", user="ivanov", duration=25)
    app.extensions["cabinet"].pbx.push_loss.clear()
    result = app.test_cli_runner().invoke(args=["megaplan", "reconcile", "--since", since.isoformat()])
    assert '"demo": 1' in result.output, result.output
    rq_worker()

    assert state.schema_violations == []
    with open(app.config["MEGAPLAN_CAPTURE_FILE"], encoding="utf-8") as capture:
        lines = capture.readlines()
    assert check_capture(lines) == []
    sent = {(r["method"], re.sub(r"/\d+", "/{id}", r["path"])) for r in map(json.loads, lines)}
    for expected in [("POST", "/api/v3/callInfo"), ("POST", "/api/v3/callInfo/{id}"),
                     ("POST", "/api/v3/callInfo/history"), ("POST", "/api/v3/callInfo/{id}/todos"),
                     ("POST", "/api/v3/todo/{id}/doAction"), ("POST", "/api/v3/contractorHuman"),
                     ("GET", "/api/v3/contractorCompany/search"), ("GET", "/api/v3/contractorHuman"),
                     ("GET", "/api/v3/contractorCompany"), ("POST", "/api/v3/callUserConfig"),
                     ("GET", "/api/v3/callRoute"), ("GET", "/api/v3/employee"), ("GET", "/api/v3/todoCategory")]:
        assert expected in sent, (expected, sorted(sent))
    # communications are calls in Megaplan's own terms: the account's «Звонок» category
    assert state.todos and {t.get("category", {}).get("id") for t in state.todos.values()} == {"1"}, list(state.todos.values())
    assert "password" not in "".join(lines) and SANDBOX_PASSWORD not in "".join(lines)
