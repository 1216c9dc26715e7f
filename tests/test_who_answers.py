"""Who is calling and who should answer (issue 27), through HTTP on the strict sandbox:
several clients on one number and «Выбрать», open deals, the customer's rating, and a
manager who is away."""
import os
import threading
import time
from datetime import date, timedelta

import pytest

from host_stub.db import db
from host_stub.testing import OTHER, SANDBOX_LOGIN, SANDBOX_PASSWORD, csrf_token, post_form, run_jobs
from megaplan_plugin.delivery import queues
from megaplan_plugin.models import NumberChoice

SHARED = "79161112233"


def _reindex(app):
    with app.app_context():
        queues.enqueue_index(1)
    run_jobs(app)


def _journal(client) -> str:
    return client.get("/plugins/megaplan/journal/").get_data(as_text=True)


def _choose(client, national, contractor_id, page="/plugins/megaplan/journal/"):
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(f"/plugins/megaplan/numbers/{national}/choose",
                       data={"csrf_token": token, "contractor_id": contractor_id, "back": "journal"})


def _answered(pbx, phone, user="ivanov", **extra):
    call = pbx.new_call(phone=phone)
    call.ring(user).answer(user)
    call.history(status="Success", user=user, **extra)
    return call


@pytest.fixture
def two_clients(megaplan_sandbox):
    state = megaplan_sandbox.state
    alpha = state.add_contractor("ContractorCompany", {"name": "ООО Альфа"}, "+7 916 111-22-33", "1000002")
    orlov = state.add_contractor("ContractorHuman", {"firstName": "Олег", "lastName": "Орлов"},
                                 "8 (916) 111-22-33", "1000004")
    return alpha, orlov


# -- 1. one number, several clients -----------------------------------------------------------------
def test_a_shared_number_is_listed_and_the_choice_is_used_by_routing_and_history(
        app, pbx, rq_worker, megaplan_sandbox, integration, two_clients):
    alpha, orlov = two_clients
    client = integration(route_to_manager="y")
    _reindex(app)  # the two clients came after the activation's index
    page = _journal(client)
    assert "Номера с несколькими клиентами" in page and "ООО Альфа" in page and "Орлов Олег" in page
    settings_page = client.get("/plugins/megaplan/").get_data(as_text=True)
    assert 'id="shared-count"' in settings_page and "Орлов Олег" in settings_page
    # no choice yet: the rule (both have a responsible, neither a time: the lowest id) picks Орлов
    assert pbx.new_call(phone=SHARED).contact() == {"responsible": "sidorov", "contact_name": "Орлов Олег"}

    response = _choose(client, "9161112233", alpha["id"])
    assert response.status_code == 302
    assert "выбран клиент «ООО Альфа»" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert pbx.new_call(phone=SHARED).contact() == {"responsible": "ivanov", "contact_name": "ООО Альфа"}
    _answered(pbx, SHARED, "ivanov")
    rq_worker()
    call = next(c for c in megaplan_sandbox.state.calls.values() if c["fromPhone"] == SHARED)
    assert call["fromUser"] == {"contentType": "ContractorCompany", "id": alpha["id"]}
    page = _journal(client)
    assert "клиентов с этим номером в Мегаплан: 2, выбран вручную «ООО Альфа»" in page
    assert "выбран</span>" in page  # the list marks the choice

    # the chosen client leaves Megaplan: calls fall back to the rule, and the journal says so
    del megaplan_sandbox.state.contractors[alpha["id"]]
    _reindex(app)
    _answered(pbx, SHARED, "sidorov")
    rq_worker()
    assert "выбранный для этого номера клиент «ООО Альфа» больше не найден в Мегаплан: " \
           "выбран «Орлов Олег» по правилу" in _journal(client)


def test_choose_refuses_a_client_the_number_does_not_have_and_a_form_without_its_token(
        app, client, integration, two_clients):
    logged_in = integration()
    _reindex(app)
    assert _choose(logged_in, "9161112233", "2000001").status_code == 404  # Кузнецов: another number
    assert _choose(logged_in, "9990000000", two_clients[0]["id"]).status_code == 404
    assert _choose(logged_in, "not-a-number", two_clients[0]["id"]).status_code == 404
    assert _choose(logged_in, "9161112233", "2000004' OR 1=1").status_code == 404


def test_another_account_cannot_choose_for_a_number_of_this_one(app, client, auth, integration, two_clients,
                                                               enable_plugin, megaplan_sandbox):
    integration()
    _reindex(app)
    auth.logout()
    assert auth.login(OTHER["account"], OTHER["password"]).status_code == 302
    enable_plugin("other")
    response = post_form(client, "/plugins/megaplan/credentials/new", {
        "title": "Другой", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD, "domain": megaplan_sandbox.url})
    assert response.status_code == 302
    assert _choose(client, "9161112233", two_clients[0]["id"], page="/plugins/megaplan/").status_code == 404
    with app.app_context():
        assert db.session.query(NumberChoice).count() == 0


# -- 2. open deals ---------------------------------------------------------------------------------
ROMASHKA = "74951234567"  # ООО Ромашка: client card Петрова's, its open deal Сидоров's (seed)


def test_the_deals_manager_is_rung_first_and_the_communication_is_related_to_the_deal(
        app, pbx, rq_worker, megaplan_sandbox, integration):
    integration(route_to_manager="y", deal_manager_first="y", create_communication="y", link_open_deal="y")
    run_jobs(app)  # deals wanted now: the index reads them
    deal = next(iter(megaplan_sandbox.state.deals.values()))
    assert pbx.new_call(phone=ROMASHKA).contact() == {"responsible": "sidorov", "contact_name": "ООО Ромашка"}
    _answered(pbx, ROMASHKA, "sidorov")
    rq_worker()
    todo = next(t for t in megaplan_sandbox.state.todos.values() if ROMASHKA[1:4] in t["name"])
    assert {"contentType": "Deal", "id": deal["id"]} in todo["relations"]
    page = _journal(pbx.client)
    assert "коммуникация связана со сделкой «Поставка оборудования»" in page
    assert "звонок направлен менеджеру сделки Пётр Сидоров" in page


def test_of_several_open_deals_the_most_recently_changed_counts_and_a_closed_one_never(
        app, pbx, megaplan_sandbox, integration):
    state = megaplan_sandbox.state
    romashka = next(c for c in state.contractors.values() if c.get("name") == "ООО Ромашка")
    state.add_deal(romashka["id"], "Сервис", "1000002", updated="2030-01-01T10:00:00+00:00")
    state.add_deal(romashka["id"], "Проигранная", "1000001", result="negative", updated="2031-01-01T10:00:00+00:00")
    integration(route_to_manager="y", deal_manager_first="y")
    run_jobs(app)
    assert pbx.new_call(phone=ROMASHKA).contact()["responsible"] == "ivanov"


def test_without_deal_first_the_clients_responsible_is_rung(pbx, integration):
    integration(route_to_manager="y", link_open_deal="y", create_communication="y")
    assert pbx.new_call(phone=ROMASHKA).contact()["responsible"] == "petrova"


def _requests_of_a_call(pbx, rq_worker, sandbox, phone) -> int:
    before = sandbox.state.request_count()
    _answered(pbx, phone, "ivanov")
    rq_worker()
    return sandbox.state.request_count() - before


def test_a_call_of_a_client_without_an_open_deal_costs_no_request_more(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y")
    without = _requests_of_a_call(pbx, rq_worker, megaplan_sandbox, "79161234567")
    integration(create_communication="y", link_open_deal="y", route_to_manager="y", deal_manager_first="y")
    rq_worker()  # the index with its deals
    with_deals = _requests_of_a_call(pbx, rq_worker, megaplan_sandbox, "79161234567")
    assert with_deals == without
    # a call of the client with an open deal costs no request more either: the relation rides along
    assert _requests_of_a_call(pbx, rq_worker, megaplan_sandbox, ROMASHKA) == without


# -- 3. the customer's rating ----------------------------------------------------------------------
def test_a_rating_in_the_history_is_a_line_of_the_communication_and_a_journal_column(
        pbx, rq_worker, megaplan_sandbox, integration):
    client = integration(create_communication="y")
    _answered(pbx, "79161234567", "ivanov", rating="4")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert "Оценка клиента: 4 из 5" in todo["description"]
    page = _journal(client)
    assert '<td class="rating">4 из 5</td>' in page
    csv = client.get("/plugins/megaplan/journal/export.csv").get_data(as_text=True)
    header, row = csv.strip("\ufeff").splitlines()[:2]
    assert header.endswith(";Оценка клиента") and row.endswith(";4 из 5")


def test_a_rating_after_the_history_is_added_once_even_pushed_twice_and_with_a_lost_answer(
        pbx, rq_worker, megaplan_sandbox, integration):
    client = integration(create_communication="y")
    call = _answered(pbx, "79161234567", "ivanov")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    megaplan_sandbox.state.lose_answers_next(1, path_prefix=f"/api/v3/todo/{todo['id']}/comments")
    call.rate(5)
    call.rate(3)  # the PBX repeats itself: the first score is the one kept
    rq_worker()
    rq_worker()
    comments = [c["content"] for c in megaplan_sandbox.state.todos[todo["id"]].get("comments", [])]
    assert comments.count("Оценка клиента: 5 из 5") == 1 and "Оценка клиента: 3 из 5" not in comments
    assert megaplan_sandbox.state.lost_answers == 1
    assert '<td class="rating">5 из 5</td>' in _journal(client)


def test_a_rating_before_the_history_goes_into_the_description_and_not_as_a_comment(
        pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y")
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov").answer("ivanov")
    call.rate(2)
    call.history(status="Success", user="ivanov")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert "Оценка клиента: 2 из 5" in todo["description"]
    assert megaplan_sandbox.state.request_count("POST", f"/api/v3/todo/{todo['id']}/comments") == 0


def test_the_simulator_rates_a_finished_call_as_the_pbx_survey_does(pbx, rq_worker, megaplan_sandbox, integration):
    client = integration(create_communication="y")
    call = _answered(pbx, "79161234567", "ivanov")
    rq_worker()
    page = client.get("/simulator/").get_data(as_text=True)
    assert 'id="rating-form"' in page and call.call_id in page
    response = client.post("/simulator/rating", data={"csrf_token": csrf_token(page), "call_id": call.call_id,
                                                       "score": "3"})
    assert response.status_code == 302
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert [c["content"] for c in todo.get("comments", [])] == ["Оценка клиента: 3 из 5"]
    assert "rating 3" in client.get("/simulator/").get_data(as_text=True)


def test_a_rating_that_is_not_a_number_is_refused_by_the_pbx_door(pbx, integration):
    integration()
    response = pbx.push(cmd="rating", callid="X1", rating="отлично")
    assert response.status_code == 400 and response.is_json


# -- 4. a manager who is away ----------------------------------------------------------------------
KUZNETSOV = "79161234567"  # Иван Иванов's client (101 → ivanov)


def _refresh_employees(client):
    token = csrf_token(client.get("/plugins/megaplan/").get_data(as_text=True))
    assert client.post("/plugins/megaplan/employees/refresh", data={"csrf_token": token}).status_code == 302


@pytest.mark.parametrize("absence, words", [
    (dict(vacation=(date.today().isoformat(), (date.today() + timedelta(days=6)).isoformat())),
     f"в отпуске до {(date.today() + timedelta(days=6)):%d.%m.%Y}"),
    (dict(working=False), "уволен"),
    (dict(fire_day=(date.today() - timedelta(days=1)).isoformat()), "уволен"),
])
def test_an_absent_responsible_gives_way_to_the_default_responsible_and_the_journal_says_why(
        pbx, rq_worker, megaplan_sandbox, integration, absence, words):
    client = integration(route_to_manager="y", route_fallback="default")
    megaplan_sandbox.state.set_absence("1000002", **absence)
    _refresh_employees(client)
    assert pbx.new_call(phone=KUZNETSOV).contact() == {"responsible": "petrova", "contact_name": "Кузнецов Сергей"}
    _answered(pbx, KUZNETSOV, "petrova")
    rq_worker()
    assert (f"ответственный за клиента Иван Иванов {words}: звонок направлен ответственному по умолчанию "
            "Мария Петрова") in _journal(client)


def test_with_the_pbx_order_as_fallback_an_absent_manager_gives_no_opinion(pbx, megaplan_sandbox, integration):
    client = integration(route_to_manager="y")  # «оставить порядок АТС» is the default
    megaplan_sandbox.state.set_absence("1000002", working=False)
    _refresh_employees(client)
    assert pbx.new_call(phone=KUZNETSOV).contact() == {}


def test_a_vacation_that_is_over_or_to_come_does_not_count(pbx, megaplan_sandbox, integration):
    client = integration(route_to_manager="y", route_fallback="default")
    later = date.today() + timedelta(days=10)
    megaplan_sandbox.state.set_absence("1000002", vacation=(later.isoformat(), (later + timedelta(days=3)).isoformat()))
    _refresh_employees(client)
    assert pbx.new_call(phone=KUZNETSOV).contact()["responsible"] == "ivanov"


def test_out_of_working_hours_counts_as_away_only_when_the_account_says_so(pbx, megaplan_sandbox, integration):
    no_day_today = [str(d) for d in range(7) if d != date.today().weekday()]
    integration(route_to_manager="y", route_fallback="default", work_days=no_day_today)
    assert pbx.new_call(phone=KUZNETSOV).contact()["responsible"] == "ivanov"
    integration(route_to_manager="y", route_fallback="default", work_days=no_day_today, route_respect_hours="y")
    # the default responsible is out of hours too: nobody can take it, the PBX's own order
    assert pbx.new_call(phone=KUZNETSOV).contact() == {}


def test_the_absence_is_refreshed_with_the_periodic_index(app, pbx, megaplan_sandbox, integration):
    integration(route_to_manager="y", route_fallback="default")
    megaplan_sandbox.state.set_absence("1000002", working=False)
    _reindex(app)
    with app.app_context():
        app.extensions["megaplan"].routes.forget("demo")
    assert pbx.new_call(phone=KUZNETSOV).contact()["responsible"] == "petrova"


def test_the_fallback_default_needs_a_default_responsible(integration):
    client = integration()
    token = csrf_token(client.get("/plugins/megaplan/").get_data(as_text=True))
    response = client.post("/plugins/megaplan/", data={
        "csrf_token": token, "credential_id": "1", "route_to_manager": "y", "route_fallback": "default",
        "work_days": ["0"], "work_start": "09:00", "work_end": "18:00"})
    assert response.status_code == 400
    assert "ему пойдут звонки, когда менеджер недоступен" in response.get_data(as_text=True)


def test_a_rating_while_the_integration_is_off_waits_without_a_writer_spinning(
        app, pbx, rq_worker, megaplan_sandbox, integration):
    client = integration(create_communication="y")
    call = _answered(pbx, "79161234567", "ivanov")
    rq_worker()
    integration(active=None, create_communication="y")  # switched off
    call.rate(4)
    assert rq_worker() <= 2  # the hook's wake-up, and no writer queuing itself again and again
    (todo,) = megaplan_sandbox.state.todos.values()
    assert not todo.get("comments")
    integration(create_communication="y")  # on again: the score reaches the communication
    with app.app_context():
        queues.wake_writer("demo")
    rq_worker()
    assert [c["content"] for c in megaplan_sandbox.state.todos[todo["id"]].get("comments", [])] == [
        "Оценка клиента: 4 из 5"]
    assert client.get("/plugins/megaplan/journal/rows.json?ids=%C2%B2,1").status_code == 200


def _reconcile(app):
    result = app.test_cli_runner().invoke(args=["megaplan", "reconcile"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("choice", ["transfer", "dismiss"])
def test_the_calls_of_the_time_off_reach_megaplan_only_when_the_admin_says_so(
        app, pbx, rq_worker, megaplan_sandbox, integration, choice):
    client = integration()
    _reconcile(app)
    integration(active=None)
    kept = pbx.new_call(phone="79161234567")
    kept.history(status="Success", user="ivanov")           # stored as «не передан»
    app.extensions["cabinet"].pbx.push_loss["demo"] = 1.0
    lost = pbx.new_call(phone="79161234567")
    lost.history(status="Success", user="ivanov")           # its push never came
    app.extensions["cabinet"].pbx.push_loss["demo"] = 0.0
    integration()                                           # on again
    _reconcile(app)
    rq_worker()
    assert megaplan_sandbox.state.calls == {}  # nothing of that time before the admin chose
    token = csrf_token(client.get("/plugins/megaplan/").get_data(as_text=True))
    response = client.post("/plugins/megaplan/transfer-skipped",
                           data={"csrf_token": token, **({"dismiss": "1"} if choice == "dismiss" else {})})
    assert response.status_code == 302
    _reconcile(app)
    rq_worker()
    sent = sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values())
    assert sent == (sorted([kept.call_id, lost.call_id]) if choice == "transfer" else [])


@pytest.mark.skipif(not (os.environ.get("DATABASE_URL") or "").startswith("postgres"),
                    reason="needs PostgreSQL (DATABASE_URL): the race is between two connections of a server")
def test_two_stores_of_the_employees_at_once_take_turns(app, integration):
    """The hourly index and «Обновить список» at the same moment: both replace the credential's
    employees; without a turn each, the second inserts what the first has just inserted."""
    from megaplan_plugin.calls import employees
    from megaplan_plugin.models import Credential, MegaplanEmployee
    barrier, errors = threading.Barrier(2), []
    directory = employees.Directory([{"megaplan_id": "1000002", "name": "Иван Иванов", "position": None,
                                      "internal_number": "101", "working": True, "fire_day": None,
                                      "vacation_first": None, "vacation_last": None}], None)

    def store():
        with app.app_context():
            credential = db.session.get(Credential, 1)
            barrier.wait()
            try:
                employees.store_directory(credential, directory)
                time.sleep(0.3)  # a commit that takes its time
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                errors.append(exc)
                db.session.rollback()

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with app.app_context():
        assert db.session.query(MegaplanEmployee).filter_by(credential_id=1).count() == 1
