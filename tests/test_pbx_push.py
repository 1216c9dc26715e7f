"""The MegaFon CRM push endpoint: every push type, its bad variants, hooks per enabled account."""
import json
import re
import time

import pytest

from host_stub.hookspecs import hookimpl
from host_stub.types import Route


class Recorder:
    """A plugin that records every hook call it receives."""

    def __init__(self, key="recorder", route=None, route_delay=0.0):
        self.key, self.calls, self.route, self.route_delay = key, [], route, route_delay

    @hookimpl
    def cabinet_plugin_info(self):
        from host_stub.types import PluginInfo
        return PluginInfo(self.key, "Запись хуков", "для тестов")

    @hookimpl
    def call_started(self, event):
        self.calls.append(("call_started", event))

    @hookimpl
    def call_answered(self, event):
        self.calls.append(("call_answered", event))

    @hookimpl
    def call_ended(self, record):
        self.calls.append(("call_ended", record))

    @hookimpl
    def route_request(self, event):
        self.calls.append(("route_request", event))
        time.sleep(self.route_delay)
        return self.route


@pytest.fixture
def recorder():
    return Recorder(route=Route("petrova", "ООО Ромашка"))


@pytest.fixture
def plugins(recorder):
    return [recorder]


@pytest.fixture(autouse=True)
def _enabled(enable_plugin):
    enable_plugin("demo", "recorder")


def test_incoming_call_fires_every_hook_in_order(pbx, recorder):
    call = pbx.new_call(phone="+7 (916) 123-45-67")
    assert call.contact() == {"responsible": "petrova", "contact_name": "ООО Ромашка"}
    call.ring("ivanov", "petrova").answer("petrova").cancel("ivanov")
    call.history(status="Success", user="petrova", duration=75, link="https://rec.example/1.mp3")

    names = [name for name, _ in recorder.calls]
    assert names == ["route_request", "call_started", "call_started", "call_answered", "call_ended"]
    started = recorder.calls[1][1]
    assert started.client_phone == "79161234567"  # normalised once, at the door
    assert started.virtual_number == "74950000001"
    assert started.user.login == "ivanov" and started.user.ext == "101"
    assert started.direction == "in" and started.at.tzinfo is not None
    record = recorder.calls[-1][1]
    assert record.status == "answered" and record.user.login == "petrova"
    assert record.duration_seconds == 75 and record.recording_url == "https://rec.example/1.mp3"
    assert {u.login for u in record.users_rung} == {"ivanov", "petrova"}
    assert record.started_at.tzinfo is not None


def test_outgoing_call_uses_the_employees_number_when_there_is_no_diversion(pbx, recorder):
    call = pbx.new_call(phone="89161234567", diversion=None, direction="out")
    call.ring("sidorov")
    call.history(status="Busy", user="sidorov", duration=0)
    (_, started), (_, record) = recorder.calls
    assert started.direction == "out" and started.client_phone == "79161234567"
    assert record.status == "busy"


@pytest.mark.parametrize("status,expected", [
    ("Success", "answered"), ("missed", "missed"), ("Missed", "missed"), ("MISSED", "missed"),
    ("Cancel", "cancelled"), ("Busy", "busy"), ("NotAvailable", "unavailable"),
    ("NotAllowed", "not_allowed"), ("NotFound", "not_found"), ("callAerror", "failed"),
])
def test_history_status_is_mapped_case_insensitively(pbx, recorder, status, expected):
    pbx.new_call().history(status=status, user="pbx")
    assert recorder.calls[-1][1].status == expected


def test_missed_group_call_with_user_pbx_has_no_employee(pbx, recorder):
    call = pbx.new_call()
    call.ring("ivanov", "petrova").cancel("ivanov").cancel("petrova")
    call.history(status="missed", user="pbx", duration=0)
    record = recorder.calls[-1][1]
    assert record.user is None and record.status == "missed"
    assert {u.login for u in record.users_rung} == {"ivanov", "petrova"}


def test_full_address_logins_and_unknown_fields_are_accepted(pbx, recorder):
    response = pbx.push(cmd="event", type="incoming", phone="79161234567", callid="X-1",
                        user="ivanov@demo.megapbx.ru", diversion="74950000001",
                        **{"z-flag": "0", "second_callid": "Y"})
    assert response.status_code == 200
    assert recorder.calls[0][1].user.login == "ivanov"


def test_json_pushes_are_accepted_like_form_pushes(client, recorder):
    body = {"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
            "user": "ivanov", "callid": "J-1", "start": "20261124T101500Z", "duration": "10",
            "crm_token": "demo-crm-token", "missedStatus": "x"}
    response = client.post("/pbx/demo/crm", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200 and response.get_json() == {}
    assert recorder.calls[0][1].call_id == "J-1"


def test_unknown_contact_is_answered_with_an_empty_object(pbx, recorder):
    recorder.route = None
    response = pbx.push(cmd="contact", phone="79160000000", callid="C-1")
    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == "{}"


def test_rating_push_is_accepted(pbx, recorder):
    assert pbx.push(cmd="rating", callid="R-1", rating="4", phone="79161234567").status_code == 200


@pytest.mark.parametrize("fields,error", [
    ({"crm_token": "wrong"}, 401),
    ({"crm_token": ""}, 401),
])
def test_a_wrong_token_is_401_and_reaches_no_plugin(pbx, recorder, fields, error):
    response = pbx.push(cmd="event", type="INCOMING", phone="79161234567", callid="1",
                        user="ivanov", **fields)
    assert response.status_code == error
    assert response.get_json() == {"error": "Invalid token"}
    assert recorder.calls == []


@pytest.mark.parametrize("fields,message", [
    ({}, "missing field: cmd"),
    ({"cmd": "dance"}, "unknown cmd"),
    ({"cmd": "event", "type": "INCOMING", "phone": "79161234567"}, "callid"),
    ({"cmd": "event", "type": "RINGING", "phone": "79161234567", "callid": "1"}, "event type"),
    ({"cmd": "event", "type": "INCOMING", "phone": "abc", "callid": "1"}, "phone"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "yesterday", "duration": "5"}, "start"),
    ({"cmd": "history", "type": "sideways", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "20261124T101500Z", "duration": "5"}, "direction"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "20261124T101500Z", "duration": "-5"}, "duration"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "99991231T235959Z", "duration": "5"}, "start out of range"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "00010101T000000Z", "duration": "5"}, "start out of range"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "20261124T101500Z", "duration": "4²"}, "duration"),
    ({"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
      "callid": "1", "start": "20261124T101500Z", "duration": "5", "wait": "٣"}, "wait"),
    ({"cmd": "contact", "callid": "1"}, "phone"),
    ({"cmd": "rating", "callid": "1", "rating": "five"}, "rating"),
    ({"cmd": "rating", "callid": "1", "rating": "⁵"}, "rating"),
])
def test_malformed_pushes_are_400_with_a_json_error(pbx, recorder, fields, message):
    response = pbx.push(**fields)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert recorder.calls == []


@pytest.mark.parametrize("body,content_type", [
    (b"\x00\xff garbage", "application/octet-stream"),
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"", "application/x-www-form-urlencoded"),
])
def test_garbage_bodies_are_400(client, recorder, body, content_type):
    response = client.post("/pbx/demo/crm", data=body, content_type=content_type)
    assert response.status_code == 400 and "error" in response.get_json()


def test_unknown_account_is_401_like_a_wrong_token(client):
    response = client.post("/pbx/nobody/crm", data={"cmd": "contact", "crm_token": "demo-crm-token"})
    assert response.status_code == 401


def test_calls_of_an_account_never_reach_a_plugin_disabled_there(client, recorder):
    other = {"crm_token": "other-crm-token", "cmd": "event", "type": "INCOMING",
             "phone": "79161234567", "callid": "O-1", "user": "smirnov"}
    assert client.post("/pbx/other/crm", data=other).status_code == 200
    assert client.post("/pbx/other/crm", data={**other, "cmd": "contact"}).get_json() == {}
    assert recorder.calls == []


def test_demo_token_does_not_open_the_other_account(client, recorder):
    response = client.post("/pbx/other/crm", data={"crm_token": "demo-crm-token", "cmd": "contact",
                                                  "phone": "79161234567", "callid": "1"})
    assert response.status_code == 401


@pytest.mark.parametrize("app_config", [{"CABINET_ROUTE_TIMEOUT_MS": 150}])
def test_a_slow_route_is_answered_with_an_empty_object_within_the_deadline(pbx, recorder, app_config):
    recorder.route_delay = 1.0
    started = time.monotonic()
    response = pbx.push(cmd="contact", phone="79161234567", callid="S-1")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.get_json() == {}
    assert elapsed < 0.6


def test_simulator_rings_answers_and_hangs_up_through_the_same_pushes(client, auth, recorder):
    auth.login()
    response = client.post("/simulator/incoming", data={
        "in-phone": "79161234567", "in-virtual_number": "74950000001",
        "in-users": ["ivanov", "petrova"], "in-ask_route": "y"})
    assert response.status_code == 302
    # The recorder routes every call to petrova, so only she rings.
    assert [(n, getattr(e, "user", None) and e.user.login) for n, e in recorder.calls] == [
        ("route_request", None), ("call_started", "petrova")]
    call_id = recorder.calls[-1][1].call_id
    page = client.get("/simulator/")
    assert call_id in page.text and "route_request" in page.text
    client.post("/simulator/action", data={"call_id": call_id, "action": "answer", "user": "petrova"})
    client.post("/simulator/action", data={"call_id": call_id, "action": "hangup"})
    assert [n for n, _ in recorder.calls][-2:] == ["call_answered", "call_ended"]
    assert recorder.calls[-1][1].status == "answered"
    assert call_id not in client.get("/simulator/").text.split("Текущие звонки")[1].split("Журнал")[0]


def test_simulator_outgoing_and_busy(client, auth, recorder):
    auth.login()
    client.post("/simulator/outgoing", data={"out-user": "sidorov", "out-phone": "79161234567",
                                             "out-virtual_number": "74950000002"})
    event = recorder.calls[-1][1]
    assert event.direction == "out" and event.virtual_number == "74950000002"
    client.post("/simulator/action", data={"call_id": event.call_id, "action": "busy"})
    assert recorder.calls[-1][1].status == "busy"


def test_simulator_form_errors_are_shown_in_russian_beside_the_field_and_keep_the_input(
        client, auth, recorder):
    auth.login()
    response = client.post("/simulator/incoming", data={"in-phone": "", "in-users": []})
    assert response.status_code == 400
    assert re.search(r'id="in-phone"[^>]*>\s*<p class="error" role="alert">Введите номер', response.text)
    assert "Выберите сотрудника" in response.text
    typed = client.post("/simulator/incoming", data={"in-phone": "79161234567",
                                                      "in-virtual_number": "74950000001", "in-users": []})
    assert typed.status_code == 400 and 'value="79161234567"' in typed.text
    assert re.search(r'<option selected value="74950000001">|<option value="74950000001" selected>', typed.text)
    assert recorder.calls == []


def test_pbx_services_make_call_and_hangup(app, recorder):
    host = app.extensions["cabinet"]
    with app.app_context():
        call_id = host.pbx.make_call("demo", "ivanov", "79161234567")
        assert recorder.calls[-1][0] == "call_started"
        assert recorder.calls[-1][1].user.login == "ivanov"
        assert host.pbx.hangup("demo", call_id) is True
        assert recorder.calls[-1][1].status == "cancelled"
        assert host.pbx.hangup("demo", call_id) is False
        assert host.pbx.hangup("other", "nope") is False
        with pytest.raises(LookupError):
            host.pbx.make_call("demo", "nobody", "79161234567")


def test_outgoing_virtual_number_falls_back_to_the_employees_direct_number(app, pbx, recorder):
    app.extensions["cabinet"].pbx.store.set_direct_number("demo", "sidorov", "74950000002")
    call = pbx.new_call(direction="out", diversion=None)
    call.ring("sidorov")
    call.history(status="Success", user="sidorov")
    assert recorder.calls[0][1].virtual_number == "74950000002"
    assert recorder.calls[-1][1].virtual_number == "74950000002"


@pytest.mark.parametrize("fields", [
    {"callid": "X" * 129},
    {"callid": "A\x00B"},
    {"user": "iva\x00nov"},
    {"phone": "7916\x001234567"},
    {"groupRealName": "Отдел\x07продаж"},
])
def test_values_no_pbx_sends_are_refused_at_the_door(pbx, fields):
    base = {"cmd": "event", "type": "INCOMING", "phone": "79161234567", "callid": "V-1",
            "user": "ivanov"}
    response = pbx.push(**{**base, **fields})
    assert response.status_code == 400 and "Invalid parameters" in response.get_json()["error"]


def test_a_deeply_nested_json_push_is_a_400(client):
    body = '{"a":' * 100_000 + "1" + "}" * 100_000
    response = client.post("/pbx/demo/crm", data=body, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("account", ["de\x00mo", "x" * 65, "demo%00"])
def test_an_account_name_no_cabinet_issues_is_an_unknown_account(client, account):
    response = client.post(f"/pbx/{account}/crm", data={"cmd": "contact", "phone": "79161234567",
                                                        "callid": "1", "crm_token": "demo-crm-token"})
    assert response.status_code == 401


def test_a_revision_1_plugin_without_call_transferred_keeps_working(pbx, recorder):
    call = pbx.new_call()
    call.ring("ivanov").answer("ivanov")
    call._push(cmd="event", type="TRANSFERRED", user="petrova", direction="in", second_callid="T-2")
    call.history(status="Success", user="petrova", duration=30, wait="4")
    names = [name for name, _ in recorder.calls]
    assert names == ["call_started", "call_answered", "call_ended"]
    assert recorder.calls[-1][1].user.login == "petrova" and recorder.calls[-1][1].wait_seconds == 4


class TransferRecorder(Recorder):
    @hookimpl
    def call_transferred(self, event):
        self.calls.append(("call_transferred", event))


@pytest.mark.parametrize("recorder", [TransferRecorder()], indirect=False)
def test_transferred_fires_call_transferred_with_who_had_the_call(pbx, recorder):
    call = pbx.new_call()
    call.ring("ivanov").answer("ivanov")
    call._push(cmd="event", type="TRANSFERRED", user="petrova", direction="in", second_callid="T-2")
    name, event = recorder.calls[-1]
    assert name == "call_transferred" and event.call_id == call.call_id
    assert event.user.login == "petrova" and event.transferred_from.login == "ivanov"


def test_a_lone_surrogate_in_a_json_token_is_a_wrong_token_not_a_500(client, recorder):
    response = client.post("/pbx/demo/crm", data='{"cmd": "contact", "phone": "79161234567", '
                           '"callid": "1", "crm_token": "\\ud800"}', content_type="application/json")
    assert response.status_code == 401 and recorder.calls == []


def test_a_lone_surrogate_in_a_history_field_is_400_and_nothing_stored(client, recorder):
    response = client.post("/pbx/demo/crm", content_type="application/json", data=(
        '{"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567", '
        '"user": "ivanov", "callid": "S\\udc00", "start": "20261124T101500Z", "duration": "5", '
        '"crm_token": "demo-crm-token"}'))
    assert response.status_code == 400 and "not valid text" in response.get_json()["error"]
    assert recorder.calls == []
