"""Call sync end to end: PBX pushes → hooks → RQ (real burst worker) → the sandbox over HTTP."""
import pytest

from host_stub.db import db
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")


def calls(sandbox):
    return list(sandbox.state.calls.values())


def clients_with(sandbox, phone_digits):
    return sandbox.state.contractors_with_phone(phone_digits)


def rows(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry).order_by(OutboxEntry.id)).scalars().all()


def test_incoming_call_opens_moves_and_finishes_one_popup(pbx, rq_worker, megaplan_sandbox, app):
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov")
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["state"] == "calling" and mp_call["providerId"] == call.call_id
    assert mp_call["toUser"]["id"] == "1000002" and mp_call["fromPhone"] == "79161234567"
    call.answer("ivanov")
    rq_worker()
    assert calls(megaplan_sandbox)[0]["state"] == "talking"
    call.history(status="Success", user="ivanov", duration=95, link="https://rec.example/a.mp3")
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["state"] == "finished" and mp_call["type"] == "in"
    # the plugin's own permanent link to the recording, not the PBX's week-long one
    (link,) = mp_call["recordLinks"]
    assert link.startswith("http://127.0.0.1:5000/plugins/megaplan/recordings/demo~1~")
    assert mp_call["timeTo"]["value"] > mp_call["timeFrom"]["value"]
    assert [e["state"] for e in megaplan_sandbox.state.widget_events] == ["calling", "talking", "finished"]
    (row,) = rows(app)
    assert row.state == "sent" and row.megaplan_call_id == mp_call["id"]
    # The known client Сергей Кузнецов is attached, not created again.
    assert mp_call["fromUser"]["contentType"] == "ContractorHuman"
    assert len(clients_with(megaplan_sandbox, "79161234567")) == 1


def test_group_call_is_one_call_owned_by_who_answered(pbx, rq_worker, megaplan_sandbox):
    call = pbx.new_call(phone="79035551234")
    call.ring("ivanov", "petrova")
    rq_worker()
    call.answer("petrova").cancel("ivanov")
    rq_worker()
    call.history(status="success", user="petrova@demo.megapbx.ru", duration=30,
                 **{"z-flag": "0", "group": "g_5f1c", "missedStatus": ""})  # as live pushes carry
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["toUser"]["id"] == "1000003" and mp_call["state"] == "finished"


def test_missed_call_belongs_to_the_default_responsible_and_its_callback_to_who_was_rung(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y", communication_types=["missed"])
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov", "petrova").cancel("ivanov").cancel("petrova")
    call.history(status="Missed", user="pbx", duration=0)
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["type"] == "miss" and mp_call["toUser"]["id"] == "1000003"
    (todo,) = megaplan_sandbox.state.todos.values()
    # The callback goes to the employees who missed it (issue 12), in the order they rang.
    assert todo["name"].startswith("Перезвонить") and todo["responsible"]["id"] == "1000002"
    assert [p["subject"]["id"] for p in todo["participants"]] != [] and \
        todo["participants"][0]["subject"]["id"] != "1000002"
    assert todo["call"] == mp_call["id"] and not todo.get("timeFinished")


def test_lost_live_events_still_give_the_history_without_a_popup(pbx, rq_worker, megaplan_sandbox, app):
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov", duration=12)
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["state"] == "finished" and mp_call["toUser"]["id"] == "1000002"
    assert megaplan_sandbox.state.widget_events == []  # bulk history opens no popup


@pytest.mark.parametrize("option,expected", [("y", 1), (None, 0)])
def test_unknown_incoming_number_creates_a_client_only_with_the_option(
        pbx, rq_worker, megaplan_sandbox, integration, option, expected):
    integration(create_client_on_incoming=option)
    call = pbx.new_call(phone="+7 (999) 111-22-33")
    call.ring("ivanov")
    call.history(status="Success", user="ivanov")
    rq_worker()
    created = clients_with(megaplan_sandbox, "79991112233")
    assert len(created) == expected
    if expected:
        client = created[0]
        assert client["name"].startswith("Новый клиент +7 (999) ")
        assert client["responsibles"][0]["id"] == "1000002"
        assert calls(megaplan_sandbox)[0]["fromUser"]["id"] == client["id"]


@pytest.mark.parametrize("option,expected", [("y", 1), (None, 0)])
def test_unknown_outgoing_number_creates_a_contact_only_with_the_option(
        pbx, rq_worker, megaplan_sandbox, integration, option, expected):
    integration(create_contact_on_outgoing=option)
    call = pbx.new_call(phone="89997776655", diversion=None, direction="out")
    call.ring("sidorov")
    call.history(status="Success", user="sidorov")
    rq_worker()
    created = clients_with(megaplan_sandbox, "79997776655")
    assert len(created) == expected
    if expected:
        assert created[0]["name"].startswith("Новый контакт +7 (999) ")
        mp_call = calls(megaplan_sandbox)[0]
        assert mp_call["type"] == "out" and mp_call["toUser"]["id"] == created[0]["id"]
        assert mp_call["fromUser"]["id"] == "1000004"


def test_unknown_incoming_without_employee_gets_the_default_responsible(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_client_on_incoming="y")
    pbx.new_call(phone="79990000001").history(status="missed", user="pbx", duration=0)
    rq_worker()
    (client,) = clients_with(megaplan_sandbox, "79990000001")
    assert client["responsibles"][0]["id"] == "1000003"


def test_employee_numbers_never_become_clients(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_client_on_incoming="y")
    pbx.new_call(phone="74950000002").history(status="Success", user="ivanov")
    rq_worker()
    assert clients_with(megaplan_sandbox, "74950000002") == []


@pytest.mark.parametrize("types,status,user,expected", [
    (["in"], "Success", "ivanov", "Входящий звонок"),
    (["missed"], "Success", "ivanov", None),
    (["missed"], "missed", "pbx", "Перезвонить"),
    (["in", "out", "missed"], "missed", "pbx", "Перезвонить"),
    (["in"], "missed", "pbx", None),
])
def test_communications_only_for_the_selected_call_types(
        pbx, rq_worker, megaplan_sandbox, integration, types, status, user, expected):
    integration(create_communication="y", communication_types=types)
    pbx.new_call().history(status=status, user=user)
    rq_worker()
    names = [t["name"] for t in megaplan_sandbox.state.todos.values()]
    if expected is None:
        assert names == []
    else:
        assert len(names) == 1 and names[0].startswith(expected)


def test_communications_off_creates_none(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication=None)
    pbx.new_call().history(status="missed", user="pbx")
    rq_worker()
    assert megaplan_sandbox.state.todos == {}


def test_outgoing_communication(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y", communication_types=["out"])
    call = pbx.new_call(direction="out", diversion=None)
    call.ring("petrova")
    call.history(status="Success", user="petrova")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["name"].startswith("Исходящий звонок") and todo["responsible"]["id"] == "1000003"
    assert todo["relations"][0]["contentType"] == "ContractorHuman"


@pytest.fixture
def sidorov_unknown_to_megaplan(megaplan_sandbox, configured):
    megaplan_sandbox.state.remove_call_user_config("1000004")
    assert configured.post("/plugins/megaplan/employees/refresh").status_code == 302


@pytest.mark.usefixtures("sidorov_unknown_to_megaplan")
@pytest.mark.parametrize("option", ["y", None])
def test_calls_of_employees_unknown_to_megaplan(pbx, rq_worker, megaplan_sandbox, integration, app, option):
    integration(save_unknown_employees=option, unknown_employee_user_id="1000005" if option else "")
    call = pbx.new_call()
    call.ring("sidorov")
    call.history(status="Success", user="sidorov")
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    (row,) = rows(app)
    if option:
        assert mp_call["toUser"]["id"] == "1000005"
        assert "от имени выбранного пользователя" in row.reason
    else:
        assert "toUser" not in mp_call
        assert row.reason == "сотрудник не найден в Мегаплан"
    assert row.state == "sent"


def test_virtual_number_filter_sends_nothing_of_other_numbers_and_the_journal_says_why(
        pbx, rq_worker, megaplan_sandbox, integration, app):
    client = integration(filter_by_numbers="y", virtual_numbers=["74950000002"])
    other = pbx.new_call(diversion="74950000001")
    other.ring("ivanov")
    other.history()
    assert rq_worker() == 0 and megaplan_sandbox.state.calls == {}
    (skipped,) = rows(app)
    assert skipped.state == "skipped" and "74950000001 не в списке" in skipped.reason
    assert "74950000001 не в списке" in client.get("/plugins/megaplan/journal/").text
    kept = pbx.new_call(diversion="74950000002")
    kept.ring("ivanov")
    kept.history()
    rq_worker()
    assert len(rows(app)) == 2
    assert [c["providerId"] for c in calls(megaplan_sandbox)] == [kept.call_id]


def test_the_same_pushes_three_times_write_everything_once(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_client_on_incoming="y", create_communication="y", communication_types=["missed"])
    call = pbx.new_call(phone="79995554433")
    for _ in range(3):
        call.ring("ivanov")
        call.history(status="missed", user="pbx", duration=0)
        rq_worker()
    assert len(calls(megaplan_sandbox)) == 1
    assert len(clients_with(megaplan_sandbox, "79995554433")) == 1
    assert len(megaplan_sandbox.state.todos) == 1


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,<b>x</b>",
                                  "file:///etc/passwd", "//evil.example/a.mp3", "https://"])
def test_a_recording_link_that_is_not_http_is_dropped_and_the_journal_says_so(
        link, pbx, rq_worker, megaplan_sandbox, app, integration):
    pbx.new_call().history(status="Success", user="ivanov", duration=5, link=link)
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert "recordLinks" not in mp_call or mp_call["recordLinks"] == []
    (row,) = rows(app)
    assert row.state == "sent" and "ссылка на запись отброшена" in row.reason
    assert "ссылка на запись отброшена" in integration().get("/plugins/megaplan/journal/").text


@pytest.mark.parametrize("status,wait,duration,call_type", [
    ("Success", 7, 67, "in"), ("missed", 25, 25, "miss"), ("Busy", 0, 0, "miss")])
def test_wait_and_duration_as_the_pbx_sends_them_give_the_calls_times(
        status, wait, duration, call_type, pbx, rq_worker, megaplan_sandbox):
    from datetime import datetime, timedelta, timezone
    start = datetime(2026, 11, 26, 9, 30, 0, tzinfo=timezone.utc)
    pbx.new_call().history(status=status, user="ivanov" if status == "Success" else "pbx",
                           start=start, duration=duration, wait=str(wait))
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["type"] == call_type
    assert datetime.fromisoformat(mp_call["timeFrom"]["value"]) == start
    # `duration` is the whole call, ringing included: the call ends at start + duration.
    assert datetime.fromisoformat(mp_call["timeTo"]["value"]) == start + timedelta(seconds=duration)


def test_the_simulator_sends_wait_and_duration_like_the_pbx(app, pbx):
    from datetime import datetime, timedelta, timezone
    call = pbx.new_call()
    call.ring("ivanov").answer("ivanov")
    pbx_state = app.extensions["cabinet"].pbx
    live = pbx_state.live_call("demo", call.call_id)
    live.started_at -= timedelta(seconds=40)           # rang for 10 s, then talked for 30 s
    live.answered_at = live.started_at + timedelta(seconds=10)
    with app.test_request_context():
        pbx_state.finish("demo", call.call_id, "Success", source="test")
        now = datetime.now(timezone.utc)
        (record,) = pbx_state.history("demo", now - timedelta(minutes=5), now + timedelta(minutes=1))
    assert record.wait_seconds == 10 and record.duration_seconds in (40, 41)


def test_answered_by_101_transferred_to_102_then_hung_up_in_the_simulator(
        app, integration, rq_worker, megaplan_sandbox):
    from host_stub.testing import post_form
    client = integration(create_communication="y", communication_types=["in"])
    post_form(client, "/simulator/incoming", {"in-phone": "79161234567", "in-virtual_number": "74950000001",
                                              "in-users": ["ivanov"]}, page="/simulator/")
    (live,) = app.extensions["cabinet"].pbx.live_calls("demo")

    def act(action, user=""):
        response = post_form(client, "/simulator/action", {"call_id": live.call_id, "action": action,
                                                           "user": user}, page="/simulator/")
        assert response.status_code == 302
        rq_worker()
    act("answer", "ivanov")
    assert "Перевести: petrova" in client.get("/simulator/").text
    act("transfer", "petrova")
    (mp_call,) = calls(megaplan_sandbox)
    petrova = next(e for e in megaplan_sandbox.state.employees
                   if megaplan_sandbox.state.internal_number_of(e) == "102")
    assert mp_call["state"] == "talking" and mp_call["toUser"]["id"] == petrova  # the popup moved
    act("hangup")
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["state"] == "finished" and mp_call["toUser"]["id"] == petrova
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["responsible"]["id"] == petrova  # the communication goes to who finished it


def test_the_popup_shows_a_known_client_from_the_first_ring(pbx, rq_worker, megaplan_sandbox):
    # «Сергей Кузнецов» +7 916 123-45-67 is in the local index since activation.
    pbx.new_call(phone="79161234567").ring("ivanov")
    rq_worker()
    (mp_call,) = calls(megaplan_sandbox)
    assert mp_call["state"] == "calling"
    assert mp_call["fromUser"]["contentType"] == "ContractorHuman"
    assert clients_with(megaplan_sandbox, "79161234567")[0]["id"] == mp_call["fromUser"]["id"]


def test_an_unknown_numbers_popup_is_bare_and_its_client_is_created_once_after_the_call(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_client_on_incoming="y")
    call = pbx.new_call(phone="79995551234")
    call.ring("ivanov")
    rq_worker()
    assert "fromUser" not in calls(megaplan_sandbox)[0]
    call.history(status="Success", user="ivanov")
    rq_worker()
    assert len(clients_with(megaplan_sandbox, "79995551234")) == 1
    assert calls(megaplan_sandbox)[0]["fromUser"]["contentType"] == "ContractorHuman"


def test_a_missed_calls_callback_goes_to_who_missed_it_and_closes_when_the_number_is_reached(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y", communication_types=["missed"])
    state = megaplan_sandbox.state
    ivanov, petrova = (next(e for e in state.employees if state.internal_number_of(e) == n)
                       for n in ("101", "102"))
    missed = pbx.new_call(phone="79163334455")
    missed.ring("petrova", "ivanov")
    missed.history(status="missed", user="pbx", duration=20, wait="20")
    rq_worker()
    (todo,) = state.todos.values()
    assert todo["name"].startswith("Перезвонить") and not todo.get("timeFinished")
    assert todo["responsible"]["id"] == petrova  # the first who was rung and missed it
    assert [p["subject"]["id"] for p in todo.get("participants", [])] == [ivanov]

    back = pbx.new_call(phone="79163334455", direction="out")
    back.ring("ivanov")
    back.history(status="Success", user="ivanov", duration=50)
    rq_worker()
    todo = state.todos[todo["id"]]
    assert todo["timeFinished"]  # finished and explained in one request (resultText)
    result = todo["resultComment"]["content"]
    assert back.call_id in result and result.startswith("Перезвонили Иван Иванов")
    assert state.request_count("POST", "/api/v3/todo/") == 1
    back_again = pbx.new_call(phone="79163334455")
    back_again.history(status="Success", user="ivanov", duration=10)
    rq_worker()
    assert len(state.todos[todo["id"]]["comments"]) == 1  # closed once, not again


def test_a_missed_group_call_nobody_mapped_goes_to_the_default_responsible(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y", communication_types=["missed"])
    pbx.new_call(phone="79163334456").history(status="missed", user="pbx", duration=5)
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["responsible"]["id"] == "1000003"  # BASE_SETTINGS' default responsible


def test_the_same_history_pushed_three_times_at_once_is_200_each_and_one_call(app, live_server):
    """A PBX that repeats a push before the first is answered: every copy gets its 200, the
    PBX's call log and the outbox each keep the call once."""
    import threading
    import uuid

    import requests
    from host_stub.db import db
    from megaplan_plugin.models import OutboxEntry
    for _ in range(5):
        call_id = uuid.uuid4().hex
        fields = {"cmd": "history", "type": "in", "phone": "79161234567", "diversion": "74950000001",
                  "user": "ivanov", "callid": call_id, "start": "20261204T120000Z", "duration": "42",
                  "status": "Success", "crm_token": "demo-crm-token"}
        barrier, answers = threading.Barrier(3), []

        def push():
            barrier.wait(10)
            answers.append(requests.post(f"{live_server}/pbx/demo/crm", data=fields, timeout=30).status_code)
        threads = [threading.Thread(target=push) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert answers == [200, 200, 200]
        with app.app_context():
            assert app.extensions["cabinet"].pbx.store.count_calls("demo", call_id) == 1
            assert db.session.execute(db.select(db.func.count()).select_from(OutboxEntry).filter_by(
                call_id=call_id)).scalar() == 1
