"""The sandbox must not drift from the reference: one set of shape checks, applied both to
responses recorded from `megaplan_api_v3.md` and to what the sandbox answers."""
import json
from pathlib import Path

import pytest
import requests

from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD
from megaplan_plugin.megaplan import MegaplanError
from megaplan_plugin.megaplan.transport import unwrap

RECORDED = Path(__file__).parent / "data" / "megaplan_reference"


def recorded(name: str) -> tuple[int, dict]:
    body = json.loads((RECORDED / f"{name}.json").read_text())
    status = 400 if name == "invalid_grant" else 422 if name == "error_422" else 200
    return status, body


def check_auth_token(status, body):
    assert status == 200
    assert set(body) >= {"access_token", "expires_in", "token_type", "scope", "refresh_token"}
    assert body["token_type"] == "bearer" and isinstance(body["expires_in"], int)


def check_invalid_grant(status, body):
    assert status == 400 and body["error"] == "invalid_grant" and body.get("error_description")


def check_employee_list(status, body):
    assert status == 200 and body["meta"]["status"] == 200 and body["meta"]["errors"] == []
    assert set(body["meta"]["pagination"]) >= {"count", "limit", "hasMoreNext"}
    for item in body["data"]:
        assert item["contentType"] == "Employee" and isinstance(item["id"], str)


def check_call_info(status, body):
    data = body["data"]
    assert status == 200 and data["contentType"] == "CallInfo" and isinstance(data["id"], str)
    assert data["type"] in {"unknown", "in", "out", "miss", "fail"}
    assert data["state"] in {"unknown", "calling", "talking", "finished", "hold"}
    assert data["timeFrom"]["contentType"] == "DateTime" and "T" in data["timeFrom"]["value"]
    assert data["toUser"]["contentType"] == "Employee"


def check_error_422(status, body):
    assert status == 422 and body["meta"]["status"] == 422 and body["data"] is None
    assert body["meta"]["errors"][0]["message"]


def check_ok_with_error(status, body):
    assert status == 200 and body["meta"]["status"] >= 400 and body["meta"]["errors"][0]["message"]


CHECKS = {"auth_token": check_auth_token, "invalid_grant": check_invalid_grant,
          "employee_list": check_employee_list, "call_info": check_call_info,
          "error_422": check_error_422, "ok_with_error": check_ok_with_error}


def live(name: str, sandbox) -> tuple[int, dict]:
    s = requests.Session()
    token_url = sandbox.url + "/api/v3/auth/access_token"
    if name == "invalid_grant":
        r = s.post(token_url, data={"grant_type": "refresh_token", "refresh_token": "used"})
        return r.status_code, r.json()
    r = s.post(token_url, data={"grant_type": "password", "username": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD})
    if name == "auth_token":
        return r.status_code, r.json()
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    if name == "employee_list":
        r = s.get(sandbox.url + '/api/v3/employee?{"limit":2}')
    elif name == "call_info":
        r = s.post(sandbox.url + "/api/v3/callInfo", json={
            "contentType": "CallInfo", "providerId": "pbx-7f3a", "type": "in", "state": "calling",
            "fromPhone": "79991234567", "toPhone": "74951234567",
            "toUser": {"contentType": "Employee", "id": "1000003"},
            "timeFrom": {"contentType": "DateTime", "value": "2025-05-01T10:00:00+03:00"}})
    elif name == "error_422":
        r = s.post(sandbox.url + "/api/v3/todo", json={"contentType": "Todo", "name": "x", "when": "now"})
    else:
        sandbox.state.ok_with_error_next(1)
        r = s.get(sandbox.url + "/api/v3/currentUser")
    return r.status_code, r.json()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_recorded_reference_responses_have_the_shape(name):
    CHECKS[name](*recorded(name))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_sandbox_answers_with_the_same_shape(name, megaplan_sandbox):
    CHECKS[name](*live(name, megaplan_sandbox))


@pytest.mark.parametrize("name,error", [("call_info", None), ("employee_list", None),
                                        ("error_422", 422), ("ok_with_error", 500)])
def test_the_client_reads_the_recorded_envelopes(name, error):
    status, body = recorded(name)
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    if error is None:
        assert unwrap(response) == body["data"]
    else:
        with pytest.raises(MegaplanError) as info:
            unwrap(response)
        assert info.value.status == error and info.value.message == body["meta"]["errors"][0]["message"]
