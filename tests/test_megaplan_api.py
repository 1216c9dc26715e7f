"""Megaplan → plugin: click-to-call and «Завершить» through real HTTP requests."""
import re

import pytest

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.models import OutboxEntry, Settings

pytestmark = pytest.mark.usefixtures("integration")


@pytest.fixture
def api(configured, app):
    """(account key, secret) of the demo account, the secret rotated through the page."""
    response = post_form(configured, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    page = configured.get(response.location).get_data(as_text=True)
    secret = re.search(r'id="new-secret">([^<]+)<', page).group(1)
    with app.app_context():
        key = db.session.get(Settings, "demo").api_key
    return key, secret


def post(client, key, secret, action, body, **kwargs):
    return client.post(f"/plugins/megaplan/api/{key}/{action}", json=body,
                       headers={"Authorization": f"Bearer {secret}"}, **kwargs)


def test_click_to_call_rings_the_employee_and_flows_through_the_sync(
        client, api, app, rq_worker, megaplan_sandbox):
    key, secret = api
    response = post(client, key, secret, "call", {"phone": "8 (916) 123-45-67", "employee_id": "1000003"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"] == "petrova" and body["phone"] == "79161234567"
    host = app.extensions["cabinet"]
    with app.app_context():
        live = host.pbx.live_call("demo", body["call_id"])
        assert live is not None and live.direction == "out" and "petrova" in live.rung
    rq_worker()
    (mp_call,) = megaplan_sandbox.state.calls.values()  # the popup of the outgoing call
    assert mp_call["providerId"] == body["call_id"] and mp_call["fromUser"]["id"] == "1000003"

    # «Завершить» in the popup carries the Megaplan call id.
    response = post(client, key, secret, "hangup", {"megaplan_call_id": mp_call["id"]})
    assert response.status_code == 200 and response.get_json()["call_id"] == body["call_id"]
    rq_worker()
    assert mp_call["state"] == "finished"
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry)).scalar_one()
        assert row.call_id == body["call_id"] and row.state == "sent"
    again = post(client, key, secret, "hangup", {"call_id": body["call_id"]})
    assert again.status_code == 409 and again.get_json()["error"] == "already_finished"


def test_call_by_internal_number(client, api):
    key, secret = api
    response = post(client, key, secret, "call", {"phone": "+79161234567", "internal_number": "103"})
    assert response.status_code == 200 and response.get_json()["user"] == "sidorov"


@pytest.mark.parametrize("body,status,error", [
    ({"phone": "79161234567", "employee_id": "999"}, 404, "unknown_employee"),
    ({"phone": "79161234567", "employee_id": "1000005"}, 409, "employee_not_mapped"),
    ({"phone": "79161234567", "internal_number": "555"}, 409, "employee_not_mapped"),
    ({"phone": "79161234567"}, 400, "bad_request"),
    ({"phone": "not a phone", "employee_id": "1000002"}, 400, "invalid_phone"),
    ({"phone": "", "employee_id": "1000002"}, 400, "invalid_phone"),
    ({"phone": ["79161234567"], "employee_id": "1000002"}, 400, "invalid_phone"),
])
def test_call_errors_are_clear(client, api, body, status, error):
    key, secret = api
    response = post(client, key, secret, "call", body)
    assert response.status_code == status
    assert response.get_json()["error"] == error and response.get_json()["message"]


def test_wrong_or_missing_secret_is_401_and_unknown_key_alike(client, api):
    key, secret = api
    assert post(client, key, "wrong", "call", {"phone": "79161234567"}).status_code == 401
    assert client.post(f"/plugins/megaplan/api/{key}/call", json={}).status_code == 401
    assert post(client, "nokey", secret, "call", {"phone": "79161234567"}).status_code == 401
    assert post(client, key, secret, "nothing", {}).status_code == 404
    response = client.get(f"/plugins/megaplan/api/{key}/call")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


def test_non_json_bodies_are_400(client, api):
    key, secret = api
    response = client.post(f"/plugins/megaplan/api/{key}/call", data="phone=1",
                           headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    response = post(client, key, secret, "hangup", [1, 2])
    assert response.status_code == 400


def test_inactive_integration_is_409(client, api, integration):
    integration(active=None)
    key, secret = api
    response = post(client, key, secret, "call", {"phone": "79161234567", "employee_id": "1000002"})
    assert response.status_code == 409 and response.get_json()["error"] == "integration_inactive"


def test_a_burst_of_calls_for_one_employee_is_limited(client, api):
    key, secret = api
    statuses = [post(client, key, secret, "call", {"phone": "79161234567", "internal_number": "101"}).status_code
                for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    limited = post(client, key, secret, "call", {"phone": "79161234567", "internal_number": "101"})
    assert limited.headers["Retry-After"] == "60"
    # another employee is not limited by ivanov's burst
    assert post(client, key, secret, "call", {"phone": "79161234567", "internal_number": "102"}).status_code == 200


def test_hangup_errors(client, api):
    key, secret = api
    assert post(client, key, secret, "hangup", {"call_id": "NOPE"}).status_code == 404
    assert post(client, key, secret, "hangup", {"megaplan_call_id": "123"}).status_code == 404
    assert post(client, key, secret, "hangup", {}).status_code == 400


def test_hangup_of_a_ringing_incoming_call(client, api, pbx, app):
    key, secret = api
    call = pbx.new_call()
    call.ring("ivanov")
    response = post(client, key, secret, "hangup", {"call_id": call.call_id})
    assert response.status_code == 200
    with app.app_context():
        assert db.session.execute(db.select(OutboxEntry.status)).scalar_one() == "missed"


def test_one_accounts_secret_never_reaches_anothers_calls(client, api, app, auth, enable_plugin, megaplan_sandbox):
    key, secret = api
    call = post(client, key, secret, "call", {"phone": "79161234567", "internal_number": "101"}).get_json()
    # The other account gets a key and secret of its own...
    auth.logout()
    auth.login("other")
    enable_plugin("other")
    post_form(client, "/plugins/megaplan/credentials/new", {
        "title": "Другой", "login": "admin@sandbox.megaplan.ru", "password": "sandbox-secret-42",
        "domain": megaplan_sandbox.url})
    post_form(client, "/plugins/megaplan/", {"credential_id": "2", "active": "y",
                                             "default_responsible_id": "1000003"})
    response = post_form(client, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    other_secret = re.search(r'id="new-secret">([^<]+)<', client.get(response.location).text).group(1)
    with app.app_context():
        other_key = db.session.get(Settings, "other").api_key
    # ...which opens neither demo's key nor demo's calls.
    assert post(client, key, other_secret, "hangup", {"call_id": call["call_id"]}).status_code == 401
    assert post(client, other_key, other_secret, "hangup", {"call_id": call["call_id"]}).status_code == 404
    with app.app_context():
        assert app.extensions["cabinet"].pbx.live_call("demo", call["call_id"]) is not None
