"""Routing to the personal manager (`contact` push → route_request) against the sandbox."""
import time

import pytest

from host_stub.db import db
from megaplan_plugin.models import ClientPhone

pytestmark = pytest.mark.usefixtures("integration")


@pytest.fixture
def routing_on(integration):
    integration(route_to_manager="y")


@pytest.mark.usefixtures("routing_on")
def test_a_known_client_rings_their_manager_on_the_very_first_call(pbx, app):
    # «Сергей Кузнецов» 79161234567 belongs to Иван Иванов (internal 101 → PBX ivanov).
    answer = pbx.new_call(phone="79161234567").contact()
    assert answer == {"responsible": "ivanov", "contact_name": "Кузнецов Сергей"}
    company = pbx.new_call(phone="84951234567").contact()
    assert company == {"responsible": "petrova", "contact_name": "ООО Ромашка"}


@pytest.mark.usefixtures("routing_on")
def test_the_second_call_is_answered_from_the_cache_without_megaplan(pbx, megaplan_sandbox):
    pbx.new_call(phone="79161234567").contact()
    before = megaplan_sandbox.state.request_count()
    assert pbx.new_call(phone="79161234567").contact()["responsible"] == "ivanov"
    assert megaplan_sandbox.state.request_count() == before


def test_routing_off_gives_no_opinion(pbx, megaplan_sandbox):
    assert pbx.new_call(phone="79161234567").contact() == {}
    assert megaplan_sandbox.state.request_count(path_prefix="/api/v3/callRoute") == 0


@pytest.mark.usefixtures("routing_on")
def test_an_unknown_number_gives_no_opinion(pbx):
    assert pbx.new_call(phone="79990001122").contact() == {}


@pytest.mark.usefixtures("routing_on")
def test_a_manager_without_a_pbx_match_gives_no_opinion(pbx, megaplan_sandbox, configured):
    megaplan_sandbox.state.remove_call_user_config("1000002")  # Иван Иванов loses 101
    assert configured.post("/plugins/megaplan/employees/refresh").status_code == 302
    assert pbx.new_call(phone="79161234567").contact() == {}


@pytest.mark.usefixtures("routing_on")
def test_a_client_remembered_by_sync_routes_without_asking_megaplan(pbx, rq_worker, megaplan_sandbox, integration):
    integration(route_to_manager="y", create_client_on_incoming="y")
    call = pbx.new_call(phone="79993332211")
    call.ring("sidorov")
    call.history(status="Success", user="sidorov")
    rq_worker()  # the new client belongs to Пётр Сидоров (103)
    before = megaplan_sandbox.state.request_count(path_prefix="/api/v3/callRoute")
    answer = pbx.new_call(phone="79993332211").contact()
    assert answer["responsible"] == "sidorov" and "Новый клиент" in answer["contact_name"]
    assert megaplan_sandbox.state.request_count(path_prefix="/api/v3/callRoute") == before


@pytest.mark.usefixtures("routing_on")
def test_routing_never_waits_on_megaplan_and_a_new_client_routes_from_the_next_call(
        pbx, rq_worker, megaplan_sandbox, app):
    from datetime import datetime, timezone

    from host_stub.types import CallEvent
    from megaplan_plugin.calls.routing import route_for
    # A client added in Megaplan after the index was filled: nothing local knows the number.
    megaplan_sandbox.state.add_contractor("ContractorHuman", {"firstName": "Олег", "lastName": "Новиков"},
                                          phone="+7 (926) 555-44-33", responsible_id="1000002")
    megaplan_sandbox.state.set_latency(5000)  # and Megaplan answers in 5 s
    before = megaplan_sandbox.state.request_count()
    with app.app_context():  # answered from local data at once: no request made, nothing waited
        started = time.monotonic()
        event = CallEvent("demo", "S-1", "in", "79265554433", "74950000001", None, datetime.now(timezone.utc))
        assert route_for(app.extensions["cabinet"], event) is None
        assert time.monotonic() - started < 0.2
    started = time.monotonic()
    assert pbx.new_call(phone="79265554433").contact() == {}  # and the PBX hears so at once
    assert time.monotonic() - started < 0.5
    assert megaplan_sandbox.state.request_count() == before  # the request path made no request
    megaplan_sandbox.state.set_latency(0)
    rq_worker()  # the background refresh asked callRoute without the PBX waiting
    with app.app_context():
        assert db.session.execute(db.select(ClientPhone.responsible_id).where(
            ClientPhone.national == "9265554433")).scalar_one() == "1000002"
    assert pbx.new_call(phone="79265554433").contact()["responsible"] == "ivanov"


@pytest.mark.usefixtures("routing_on")
def test_a_client_never_called_routes_on_the_first_call_whatever_the_phone_format(
        pbx, megaplan_sandbox, rq_worker, app):
    from megaplan_plugin.delivery import queues
    for n, written in enumerate(["8 (916) 700-00-01", "+7 916 700-00-02", "9167000003"]):
        megaplan_sandbox.state.add_contractor("ContractorHuman", {"firstName": f"Клиент{n}", "lastName": "Формат"},
                                              phone=written, responsible_id="1000002")
    with app.app_context():
        queues.enqueue_index(1)  # the periodic refresh of the index (hourly on RQ's cron)
    rq_worker()
    for n in range(3):
        answer = pbx.new_call(phone=f"7916700000{n + 1}").contact()
        assert answer["responsible"] == "ivanov", (n, answer)


@pytest.mark.usefixtures("routing_on")
def test_filtered_numbers_are_not_routed(pbx, integration):
    integration(route_to_manager="y", filter_by_numbers="y", virtual_numbers=["74950000002"])
    assert pbx.new_call(phone="79161234567", diversion="74950000001").contact() == {}
    assert pbx.new_call(phone="79161234567", diversion="74950000002").contact()["responsible"] == "ivanov"


@pytest.mark.usefixtures("routing_on")
def test_one_accounts_routing_never_answers_anothers_calls(client, pbx):
    from host_stub.testing import PbxScript
    other = PbxScript(client, "other", "other-crm-token")
    assert other.new_call(phone="79161234567").contact() == {}


@pytest.mark.usefixtures("routing_on")
def test_a_first_ask_is_one_statement_outside_any_transaction_and_a_miss_is_queued_off_thread(app):
    from datetime import datetime, timezone

    from sqlalchemy import event

    from host_stub.types import CallEvent
    from megaplan_plugin.calls.routing import route_for
    from megaplan_plugin.delivery import queues
    host = app.extensions["cabinet"]
    statements = []

    def seen(conn, _cursor, statement, *_):
        statements.append((statement.split()[0].upper(), getattr(conn.connection.dbapi_connection, "autocommit", None)))

    with app.app_context():
        ask = lambda phone: route_for(host, CallEvent(  # noqa: E731
            "demo", "R-" + phone, "in", phone, "74950000001", None, datetime.now(timezone.utc)))
        ask("79161234567")  # warm the settings and the PBX users: the question is the lookup
        reader = app.extensions["megaplan"].routes.reader(db.engine)
        assert reader is not db.engine  # a pool of its own: the host's cannot starve it
        event.listen(reader, "before_cursor_execute", seen)
        try:
            assert ask("84951234567").user_login == "petrova"   # from the index
            assert ask("79990001122") is None                    # nobody knows it
        finally:
            event.remove(reader, "before_cursor_execute", seen)
        assert [kind for kind, _ in statements] == ["SELECT", "SELECT"]
        if db.engine.dialect.name != "sqlite":
            assert all(autocommit for _, autocommit in statements)  # no BEGIN, no ROLLBACK
        app.extensions["megaplan"].route_refresher.drain()
        job = queues.queue(queues.SYNC_QUEUE).fetch_job(queues.route_job_id("demo", "79990001122"))
        assert job is not None and job.args == ("demo", "79990001122")


@pytest.mark.usefixtures("routing_on")
def test_the_simulators_journal_says_what_routing_answered_in_words(configured):
    from host_stub.testing import post_form
    for phone in ("79161234567", "79990001122"):
        post_form(configured, "/simulator/incoming", {"in-phone": phone, "in-virtual_number": "74950000001",
                                                      "in-users": ["sidorov"], "in-ask_route": "y"},
                  page="/simulator/")
    page = configured.get("/simulator/").text
    assert "звонить ivanov («Кузнецов Сергей»)" in page
    assert "нет маршрута: звонок идёт по сценарию" in page and "{&#39;" not in page


@pytest.mark.usefixtures("routing_on")
def test_routing_answers_while_every_connection_of_the_hosts_pool_is_taken(app):
    """A burst of calls can hold every pooled connection of the host while they wait for their
    route; routing reads on a pool of its own, so it still answers, and at once."""
    from datetime import datetime, timezone

    from host_stub.types import CallEvent
    from megaplan_plugin.calls.routing import route_for
    host = app.extensions["cabinet"]

    def ask(phone):
        with app.app_context():
            return route_for(host, CallEvent("demo", "P-" + phone, "in", phone, "74950000001", None,
                                             datetime.now(timezone.utc)))

    assert ask("79161234567").user_login == "ivanov"  # the PBX users are known from now on
    with app.app_context():
        pool = db.engine.pool
        held = []
        try:
            while pool.checkedout() < pool.size() + max(pool._max_overflow, 0):
                held.append(db.engine.connect())
            started = time.monotonic()
            assert ask("84951234567").user_login == "petrova"  # first ask of this number
            assert time.monotonic() - started < 0.5
        finally:
            for conn in held:
                conn.close()
