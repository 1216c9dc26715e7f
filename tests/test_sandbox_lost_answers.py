"""The sandbox's "request done, answer lost" fault, over real HTTP: Megaplan performs the write,
the client never hears of it (a dropped connection, or a timeout when the answer is held back)."""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from host_stub.megaplan_sandbox import serve
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD
from megaplan_plugin.megaplan import MegaplanClient, MegaplanTransientError

HUMAN = "/api/v3/contractorHuman"
CALLS = "/api/v3/callInfo"


@pytest.fixture
def sandbox(caplog, capfd):
    with serve() as server:
        yield server
    # A held-back answer is dropped after the test has its timeout; wait for those drops so a
    # traceback from them would still be seen here.
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in capfd.readouterr().err


@pytest.fixture
def auth(sandbox):
    response = requests.post(sandbox.url + "/api/v3/auth/access_token", timeout=5, data={
        "grant_type": "password", "username": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def body(path: str, mark: str) -> dict:
    if path == HUMAN:
        return {"contentType": "ContractorHuman", "firstName": mark, "lastName": "Lost"}
    return {"contentType": "CallInfo", "providerId": mark, "type": "in", "fromPhone": "79990000000"}


def created(sandbox, path: str, mark: str) -> list[dict]:
    if path == HUMAN:
        return [c for c in sandbox.state.contractors.values() if c.get("firstName") == mark]
    return [c for c in sandbox.state.calls.values() if c.get("providerId") == mark]


def post(sandbox, auth, path, mark, timeout=5):
    return requests.post(sandbox.url + path, json=body(path, mark), headers=auth, timeout=timeout)


@pytest.mark.parametrize("path", [HUMAN, CALLS])
def test_dropped_answer_the_write_is_done_once_and_the_next_is_answered(sandbox, auth, path):
    sandbox.state.lose_answers_next(1, path)
    with pytest.raises(requests.ConnectionError):
        post(sandbox, auth, path, "first")
    assert len(created(sandbox, path, "first")) == 1
    assert sandbox.state.lost_answers == 1 and sandbox.state.lost_answer_requests == [("POST", path)]

    response = post(sandbox, auth, path, "second")
    assert response.status_code == 200 and response.json()["data"]["id"]
    assert len(created(sandbox, path, "second")) == 1
    assert sandbox.state.request_count("POST", path) == 2 and sandbox.state.lost_answers == 1


@pytest.mark.parametrize("path", [HUMAN, CALLS])
def test_held_back_answer_times_the_client_out_after_the_write(sandbox, auth, path):
    faults = requests.post(sandbox.url + "/_sandbox/faults", timeout=5,
                           json={"lose_answers_next": 1, "path_prefix": path, "answer_delay": 2})
    assert faults.json() == {"ok": True}
    with pytest.raises(requests.ReadTimeout):
        post(sandbox, auth, path, "first", timeout=(2, 0.5))
    assert len(created(sandbox, path, "first")) == 1
    assert requests.get(sandbox.url + "/_sandbox/state", timeout=5).json()["lost_answers"] == 1

    # Answered while the held-back one still waits in its own thread.
    assert post(sandbox, auth, path, "second").status_code == 200
    assert len(created(sandbox, path, "second")) == 1


def test_a_client_that_waits_longer_than_the_hold_sees_the_connection_closed(sandbox, auth):
    sandbox.state.lose_answers_next(1, HUMAN, delay=0.3)
    with pytest.raises(requests.ConnectionError):
        post(sandbox, auth, HUMAN, "patient", timeout=3)
    assert len(created(sandbox, HUMAN, "patient")) == 1


def test_other_paths_and_methods_are_answered(sandbox, auth):
    sandbox.state.lose_answers_next(3, HUMAN)
    assert requests.get(sandbox.url + HUMAN, headers=auth, timeout=5).status_code == 200
    assert post(sandbox, auth, CALLS, "call").status_code == 200
    company = {"contentType": "ContractorCompany", "name": "ООО Ответ"}
    assert requests.post(sandbox.url + "/api/v3/contractorCompany", json=company, headers=auth,
                         timeout=5).status_code == 200
    assert requests.post(sandbox.url + "/_sandbox/faults", json={}, timeout=5).status_code == 200

    sandbox.state.lose_answers_next(1, CALLS, method="GET")
    assert post(sandbox, auth, CALLS, "call-2").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.url + CALLS, headers=auth, timeout=5)
    assert sandbox.state.lost_answer_requests == [("GET", CALLS)]


def test_reset_disarms(sandbox, auth):
    sandbox.state.lose_answers_next(1, HUMAN)
    requests.post(sandbox.url + "/_sandbox/faults", json={"reset": True}, timeout=5)
    assert sandbox.state.lost_answers == 0
    # The reset also dropped the token `auth` holds: a 401 that arrives is an answer.
    assert post(sandbox, auth, HUMAN, "after-reset").status_code == 401


@pytest.mark.parametrize("delay, timeout, error", [
    (None, 5, requests.ConnectionError),
    (0.3, 3, requests.ConnectionError),
    (1, (2, 0.3), requests.ReadTimeout),
], ids=["dropped", "held-then-dropped", "held-past-timeout"])
def test_twenty_concurrent_requests_each_lose_their_answer(sandbox, auth, delay, timeout, error):
    sandbox.state.lose_answers_next(20, HUMAN, delay=delay)
    marks = [f"concurrent-{n}" for n in range(20)]

    def attempt(mark):
        try:
            post(sandbox, auth, HUMAN, mark, timeout=timeout)
        except requests.RequestException as exc:
            return exc
        return None

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, marks))
    assert all(isinstance(o, error) for o in outcomes), outcomes
    assert all(len(created(sandbox, HUMAN, m)) == 1 for m in marks)
    assert sandbox.state.lost_answers == 20
    assert post(sandbox, auth, HUMAN, "after").status_code == 200


@pytest.mark.parametrize("delay, timeout", [(None, (2, 5)), (2, (2, 0.5))], ids=["dropped", "timeout"])
def test_megaplan_client_reports_a_lost_answer_as_transient(sandbox, delay, timeout):
    client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD, timeout=timeout)
    client.current_user()  # logged in before the fault, so only the create can lose its answer
    sandbox.state.lose_answers_next(1, HUMAN, delay=delay)
    with pytest.raises(MegaplanTransientError):
        client.create_contractor_human("Потерянный", "Ответ", "+7 999 000-11-22")
    assert len(sandbox.state.contractors_with_phone("79990001122")) == 1
    assert client.create_contractor_human("Второй", "Ответ", "+7 999 000-11-33")["id"]
