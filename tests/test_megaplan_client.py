"""The Megaplan API v3 client against the sandbox over real HTTP (no mocks of requests)."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests

from host_stub.megaplan_sandbox import SandboxState, serve
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD
from megaplan_plugin.megaplan import (
    InvalidDomain,
    MegaplanAuthError,
    MegaplanClient,
    MegaplanError,
    MegaplanPermanentError,
    MegaplanTransientError,
    MemoryTokenStore,
    Tokens,
    datetime_value,
    link,
    normalize_domain,
)


@pytest.fixture
def sandbox():
    with serve() as server:
        yield server


@pytest.fixture
def client(sandbox):
    return MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD)


# -- calls -------------------------------------------------------------------------------------
def test_current_user_and_employees(client):
    assert client.current_user()["id"] == "1000001"
    employees = {e["id"]: e for e in client.employees()}
    assert employees["1000002"]["name"] == "Иван Иванов"
    assert employees["1000002"]["position"] == "Менеджер по продажам"  # asked-for field in a list
    assert client.internal_numbers() == {"1000002": "101", "1000003": "102", "1000004": "103"}


def test_internal_numbers_in_sip_form_are_read_bare(client, sandbox):
    sandbox.state.set_internal_number("1000005", "sip:104@pbx.example")
    assert client.internal_numbers()["1000005"] == "104"
    client.save_call_user_config("1000001", "100")
    assert client.internal_numbers()["1000001"] == "100"


def test_pagination_over_hundreds_of_employees(client, sandbox):
    sandbox.state.add_employees(260)
    ids = [e["id"] for e in client.employees()]
    assert len(ids) == 265 and len(set(ids)) == 265
    assert sandbox.state.request_count("GET", "/api/v3/employee") == 3


def test_find_clients_by_any_form_of_the_number(client):
    for form in ("84951234567", "74951234567", "+7 (495) 123-45-67", "4951234567"):
        (found,) = client.find_contractors_by_phone(form)
        assert found["name"] == "ООО Ромашка"
        assert found["responsibles"][0]["name"] == "Мария Петрова"  # link resolved from `included`
    assert client.find_contractors_by_phone("79000000000") == []


def test_create_clients_and_calls_with_history_contractor_and_todos(client, sandbox):
    human = client.create_contractor_human("Новый клиент", "+7 999 111-22-33", "79991112233",
                                           responsible_id="1000002")
    assert human["contentType"] == "ContractorHuman" and human["id"]
    company = client.post("/api/v3/contractorCompany", {"contentType": "ContractorCompany", "name": "ООО Тест"})
    assert company["name"] == "ООО Тест"
    now = datetime.now(timezone.utc)
    call = client.create_call({"providerId": "pbx-1", "type": "in", "state": "calling",
                               "fromPhone": "79991112233", "toPhone": "74950000001",
                               "toUser": link("Employee", "1000002"), "timeFrom": datetime_value(now)})
    assert call["state"] == "calling" and sandbox.state.widget_events[-1]["employees"] == ["1000002"]
    assert client.get_call_by_provider("pbx-1")["id"] == call["id"]
    assert client.get_call_by_provider("nope") is None
    client.post("/api/v3/callInfo/provider", {"contentType": "CallInfo", "state": "talking", "providerId": "pbx-1"})
    assert client.update_call(call["id"], {"state": "finished", "recordLinks": ["https://r/1.mp3"]})["state"] == "finished"
    client.post(f"/api/v3/callInfo/{call['id']}/setContractor", link("ContractorHuman", human["id"]))
    assert sandbox.state.calls[call["id"]]["fromUser"]["id"] == human["id"]
    todo = client.create_call_todo(call["id"], {"name": "Перезвонить"})
    assert [t["id"] for t in client.call_todos(call["id"])] == [todo["id"]]
    assert client.post("/api/v3/todo", {"contentType": "Todo", "name": "Отдельное дело"})["name"] == "Отдельное дело"
    (saved,) = client.save_call_history([{"providerId": "pbx-2", "type": "miss", "fromPhone": "79991112233",
                                          "timeFrom": datetime_value(now - timedelta(minutes=1)),
                                          "timeTo": datetime_value(now)}])
    assert saved["state"] == "finished"
    assert sandbox.state.widget_events[-1]["providerId"] != "pbx-2"  # bulk history opens no popup


def test_call_route_names_the_responsible_whose_internal_number_is_in_call_user_configs(client):
    route = client.call_route("79161234567")
    assert route["employees"][0]["id"] == "1000002"
    assert "internalNumber" not in route["employees"][0]  # Employee has none in Megaplan's schema
    assert client.internal_numbers()["1000002"] == "101"
    assert route["users"][0]["contentType"] == "ContractorHuman"


# -- errors ------------------------------------------------------------------------------------
def test_wrong_password_is_an_auth_error_and_not_retried(sandbox):
    bad = MegaplanClient(sandbox.url, SANDBOX_LOGIN, "wrong")
    with pytest.raises(MegaplanAuthError) as info:
        bad.current_user()
    assert not info.value.transient
    assert sandbox.state.request_count("POST", "/api/v3/auth/access_token") == 1
    assert sandbox.state.request_count("GET", "/api/v3/currentUser") == 0


def test_500_is_transient(client, sandbox):
    client.current_user()
    sandbox.state.fail_next(1, status=500)
    with pytest.raises(MegaplanTransientError) as info:
        client.current_user()
    assert info.value.status == 500 and info.value.transient
    assert client.current_user()["id"] == "1000001"


def test_422_is_permanent_with_the_servers_message(client):
    with pytest.raises(MegaplanPermanentError) as info:
        client.post("/api/v3/todo", {"contentType": "Todo", "name": "x", "when": "tomorrow"})
    assert info.value.status == 422 and "when" in info.value.message


def test_200_with_an_error_inside_is_an_error(client, sandbox):
    client.current_user()
    sandbox.state.ok_with_error_next(1)
    with pytest.raises(MegaplanError) as info:
        client.current_user()
    assert info.value.status == 500


def test_slow_megaplan_times_out_as_transient(sandbox):
    quick = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, timeout=(5, 5))
    quick.current_user()  # the token first, at a pace a loaded CI machine keeps
    quick.timeout = (1, 0.2)
    sandbox.state.set_latency(600)
    with pytest.raises(MegaplanTransientError, match="timeout"):
        quick.current_user()


def test_unreachable_megaplan_is_transient():
    with pytest.raises(MegaplanTransientError):
        MegaplanClient("http://127.0.0.1:1", SANDBOX_LOGIN, SANDBOX_PASSWORD, timeout=(0.5, 0.5)).current_user()


# -- tokens ------------------------------------------------------------------------------------
def test_an_expired_access_token_is_refreshed_once_and_the_request_repeated(client, sandbox):
    client.current_user()
    first = client.tokens.load()
    sandbox.state.expire_access_tokens()
    assert client.current_user()["id"] == "1000001"
    second = client.tokens.load()
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
    assert sandbox.state.request_count("POST", "/api/v3/auth/access_token") == 2


def test_a_token_about_to_expire_is_refreshed_before_use():
    state = SandboxState()
    state.token_ttl = 60  # inside the refresh margin from the start
    with serve(state) as sandbox:
        client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD)
        client.current_user()
        client.current_user()
        assert sandbox.state.request_count("GET", "/api/v3/currentUser") == 2
        assert sandbox.state.request_count("POST", "/api/v3/auth/access_token") == 2  # no 401 first


def test_a_used_refresh_token_falls_back_to_the_password(client, sandbox):
    client.current_user()
    sandbox.state.revoke_tokens()
    assert client.current_user()["id"] == "1000001"
    assert sandbox.state.grants == ["password", "refresh_token", "password"]


def test_a_pair_rotated_by_another_worker_is_reloaded_not_replaced_by_the_password(sandbox):
    store = MemoryTokenStore()
    a = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, token_store=store)
    a.current_user()
    stale = store.load()
    sandbox.state.expire_access_tokens()
    a.current_user()  # a rotates: stale.refresh_token is now dead
    b_store = _StaleFirstStore(store, stale)
    b = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, token_store=b_store)
    assert b.access_token(force_refresh_of=stale).access_token == store.load().access_token
    # a: password, refresh; b: one refused refresh, then the pair a stored. No second password.
    assert sandbox.state.grants == ["password", "refresh_token", "refresh_token"]


class _StaleFirstStore:
    """Worker b read the pair (twice: before and under the lock) just before a rotated it."""

    def __init__(self, real, stale):
        self.real, self.stale, self.stale_reads = real, stale, 2

    def load(self, fresh=False):
        if self.stale_reads:
            self.stale_reads -= 1
            return self.stale
        return self.real.load()

    def refresh_lock(self):
        return self.real.refresh_lock()

    def save(self, new, replaced):
        return self.real.save(new, replaced)


def test_two_clients_sharing_a_store_refresh_at_once_and_both_keep_working(sandbox):
    store = MemoryTokenStore()
    clients = [MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, token_store=store) for _ in range(2)]
    clients[0].current_user()
    sandbox.state.expire_access_tokens()
    errors = []

    def work(c):
        try:
            for _ in range(5):
                c.current_user()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sandbox.state.grants.count("password") == 1  # nobody fell back to the password
    final = store.load()
    assert sandbox.state.user_of(final.access_token) == "1000001"  # the stored pair is alive
    fresh = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, token_store=store)
    assert fresh.current_user()["id"] == "1000001"


def test_memory_store_is_compare_and_swap():
    store = MemoryTokenStore()
    one = Tokens("a1", "r1", None)
    assert store.save(one, None) is one
    two = Tokens("a2", "r2", None)
    assert store.save(two, one) is two
    late = Tokens("a3", "r3", None)
    assert store.save(late, one) is two  # replaced an old pair: the newer one wins
    assert "a2" not in repr(two) and "r2" not in repr(two)  # tokens never reach a log via repr


# -- conventions -------------------------------------------------------------------------------
def test_query_parameters_travel_as_one_json_object(client, sandbox):
    client.current_user()
    token = client.tokens.load().access_token
    raw = requests.get(f"{sandbox.url}/api/v3/employee?limit=2",
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert len(raw["data"]) == 5  # `?limit=2` is silently not understood (pitfall 2)
    assert len(client.get("/api/v3/employee", {"limit": 2})) == 2


@pytest.mark.parametrize("value,allow_http,expected", [
    ("acme.megaplan.ru", False, "https://acme.megaplan.ru"),
    ("  ACME.Megaplan.ru  ", False, "https://acme.megaplan.ru"),
    ("https://acme.megaplan.ru/", False, "https://acme.megaplan.ru"),
    ("acme.megaplan.ru/crm/deals/", False, "https://acme.megaplan.ru"),
    ("http://127.0.0.1:5001", True, "http://127.0.0.1:5001"),
    ("http://localhost:8080/", True, "http://localhost:8080"),
])
def test_domains_are_normalised(value, allow_http, expected):
    assert normalize_domain(value, allow_http=allow_http) == expected


@pytest.mark.parametrize("value,allow_http", [
    ("example.com", False), ("megaplan.ru", False), ("a.b.megaplan.ru", False), ("", False),
    ("http://127.0.0.1:5001", False), ("https://acme.megaplan.ru:8443", False),
    ("ftp://acme.megaplan.ru", True), ("https://user:pw@acme.megaplan.ru", False), ("acme_.megaplan.ru", False),
])
def test_other_domains_are_refused_in_russian(value, allow_http):
    with pytest.raises(InvalidDomain, match="YOURDOMAIN.megaplan.ru"):
        normalize_domain(value, allow_http=allow_http)


# -- the sandbox's own pitfalls (reference §6) -------------------------------------------------
def test_sandbox_reproduces_the_references_pitfalls(client, sandbox):
    with pytest.raises(MegaplanError) as info:
        client.get("/api/v3/contractor/search", {"q": "Ромашка"})
    assert info.value.status == 500  # abstract contractor routes fail (pitfall 4)
    with pytest.raises(MegaplanError) as info:
        client.get("/api/v3/employee/me")
    assert info.value.status == 405
    todo = client.post("/api/v3/todo", {"contentType": "Todo", "name": "Дело"})
    copy = client.post(f"/api/v3/todo/{todo['id']}", {"contentType": "Todo", "name": "Дело 2"})
    assert copy["id"] != todo["id"]  # no id in the body: a new todo (pitfall 9)
    same = client.post(f"/api/v3/todo/{todo['id']}", {"contentType": "Todo", "id": todo["id"], "name": "Дело 3"})
    assert same["id"] == todo["id"]
    # Without X-USE-INCLUDED-RESPONSE a repeated entity comes in full only once (pitfall 8).
    token = client.tokens.load().access_token
    short = requests.get(f"{sandbox.url}/api/v3/contractorCompany/search?" + '{"q":"Ромашка"}',
                         headers={"Authorization": f"Bearer {token}"}).json()
    # Strict: search answers shortened cards unless `fields` asks for more (reference §8).
    assert "contactInfo" not in short["data"][0] and "responsibles" not in short["data"][0]
    raw = requests.get(f"{sandbox.url}/api/v3/contractorCompany/search?" +
                       '{"q":"Ромашка","fields":["responsibles"]}',
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert raw["data"][0]["responsibles"][0]["name"] == "Мария Петрова"


def test_sandbox_page_and_fault_endpoint(client, sandbox):
    client.create_call({"providerId": "demo-1", "type": "in", "state": "calling", "fromPhone": "79161234567"})
    page = requests.get(sandbox.url + "/").text
    assert "Мегаплан (песочница)" in page and "demo-1" in page
    requests.post(sandbox.url + "/_sandbox/faults", json={"fail_next": 1, "status": 503})
    with pytest.raises(MegaplanTransientError):
        client.current_user()
    assert requests.get(sandbox.url + "/_sandbox/state").json()["calls"][0]["providerId"] == "demo-1"


def test_sandbox_reproduces_the_other_pitfalls(client):
    # 3: /employee ignores `filter` and `q` (200, unfiltered).
    assert len(client.get("/api/v3/employee", {"q": "Иван", "filter": {"contentType": "EmployeeFilter", "id": "1"}})) == 5
    # 5: comments on contractors fail.
    with pytest.raises(MegaplanTransientError):
        client.get("/api/v3/contractorHuman/2000001/comments")
    # 7: lists return fewer fields than cards.
    listed = next(e for e in client.get("/api/v3/employee") if e["id"] == "1000002")
    assert "firstName" not in listed and "firstName" in client.get("/api/v3/employee/1000002")
    # 10: nothing stops a second client with the same phone (the plugin must look first).
    client.create_contractor_human("Дубль", "Кузнецов", "79161234567")
    assert len(client.find_contractors_by_phone("79161234567")) == 2
    # 15: getEntitiesByLinks fails for Employee links, works for contractors.
    with pytest.raises(MegaplanTransientError):
        client.post("/api/v3/bulk/getEntitiesByLinks", [link("Employee", "1000002")])
    assert client.post("/api/v3/bulk/getEntitiesByLinks", [link("ContractorHuman", "2000001")])[0]["id"] == "2000001"
