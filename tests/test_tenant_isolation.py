"""No way from one tenant into another (issue 13), tried as an attacker would.

``demo`` has the integration on, a live call with its popup in Megaplan, a failed journal row
and a telephony app secret. ``other`` (a tenant of its own, integration on, its own key and
secret) then tries demo's objects by id and by key through every plugin URL, the Megaplan API
and the PBX endpoint. Each attempt must be refused (403/404/401, or a form error) AND leave no
trace: demo's rows byte for byte as before, no job of demo's queued, demo's call still live.
"""
import re

import pytest
import sqlalchemy as sa
from rq.exceptions import NoSuchJobError
from rq.job import Job

from host_stub.db import db
from host_stub.testing import OTHER, SANDBOX_LOGIN, SANDBOX_PASSWORD, post_form
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.intents import call_of_megaplan_id
from megaplan_plugin.models import OutboxEntry, Settings

DEMO_TABLES = {  # demo's rows in every plugin table, read with plain SQL
    "megaplan_settings": "account_id = 'demo'",
    "megaplan_credential": "account_id = 'demo'",
    "megaplan_employee": "credential_id IN (SELECT id FROM megaplan_credential WHERE account_id = 'demo')",
    "megaplan_outbox": "account_id = 'demo'",
    "megaplan_intent": "account_id = 'demo'",
    "megaplan_client_phone": "credential_id IN (SELECT id FROM megaplan_credential WHERE account_id = 'demo')",
}


class Tenants:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _secret_of(client, app, account: str) -> tuple[str, str]:
    response = post_form(client, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    secret = re.search(r'id="new-secret">([^<]+)<', client.get(response.location).text).group(1)
    with app.app_context():
        return db.session.get(Settings, account).api_key, secret


@pytest.fixture
def tenants(app, client, auth, integration, enable_plugin, pbx, rq_worker, megaplan_sandbox):
    """demo fully set up; the client then logged in as ``other`` with its own integration."""
    demo_key, demo_secret = _secret_of(client, app, "demo")
    live = pbx.new_call(phone="79161234567").ring("ivanov")
    megaplan_sandbox.state.fail_next(1, status=422, path_prefix="/api/v3/callInfo/history")
    pbx.new_call(phone="79035551234").history(status="missed", user="pbx", duration=0)
    rq_worker()
    (popup,) = [c for c in megaplan_sandbox.state.calls.values() if c["providerId"] == live.call_id]
    with app.app_context():
        failed = db.session.execute(db.select(OutboxEntry).where(OutboxEntry.account_id == "demo",
                                                             OutboxEntry.state == OutboxEntry.FAILED)).scalar_one()
        failed_id, failed_call = failed.id, failed.call_id
        assert call_of_megaplan_id(db.session, "demo", popup["id"]) == live.call_id
        demo_credential = db.session.execute(sa.text(
            "SELECT id FROM megaplan_credential WHERE account_id = 'demo'")).scalar_one()

    auth.logout()
    assert auth.login(OTHER["account"], OTHER["password"]).status_code == 302
    enable_plugin("other")
    response = post_form(client, "/plugins/megaplan/credentials/new", {
        "title": "Другой", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD, "domain": megaplan_sandbox.url})
    assert response.status_code == 302, response.text
    with app.app_context():
        other_credential = db.session.execute(sa.text(
            "SELECT id FROM megaplan_credential WHERE account_id = 'other'")).scalar_one()
    response = post_form(client, "/plugins/megaplan/", {
        "credential_id": str(other_credential), "active": "y", "default_responsible_id": "1000003"})
    assert response.status_code == 302, response.text[-1500:]
    other_key, other_secret = _secret_of(client, app, "other")
    return Tenants(client=client, demo_key=demo_key, demo_secret=demo_secret, live=live.call_id,
                   popup_id=popup["id"], failed_id=failed_id, failed_call=failed_call,
                   demo_credential=demo_credential, other_credential=other_credential,
                   other_key=other_key, other_secret=other_secret)


def demo_state(app) -> dict:
    """Everything of demo's an attacker could change: rows, jobs, live calls, plugin switch."""
    host = app.extensions["cabinet"]
    conn = app.extensions["megaplan"].redis
    with app.app_context():
        rows = {table: sorted(tuple(map(repr, row)) for row in db.session.execute(
            sa.text(f"SELECT * FROM {table} WHERE {where}")).all()) for table, where in DEMO_TABLES.items()}
        enabled = "megaplan" in host.enabled_plugins("demo")
        demo_credential = db.session.execute(sa.text(
            "SELECT id FROM megaplan_credential WHERE account_id = 'demo'")).scalars().all()
    # every job in Redis, not only the queues: a job kept aside (an account's fair share) or
    # scheduled for a retry counts too
    jobs = []
    for key in conn.scan_iter("rq:job:*"):
        job_id = (key.decode() if isinstance(key, bytes) else key).removeprefix("rq:job:")
        if ":" in job_id:
            continue  # rq:job:<id>:dependents and the like
        try:
            job = Job.fetch(job_id, connection=conn)
        except NoSuchJobError:
            continue
        args = job.args or ()
        if "demo" in map(str, args) or (job.func_name == queues.INDEX_CLIENTS and args and
                                        args[0] in demo_credential):
            jobs.append((job.id, job.func_name, str(job.get_status(refresh=False)), str(job.enqueued_at)))
    live = sorted((c.call_id, c.answered_by.login if c.answered_by else None) for c in host.pbx.live_calls("demo"))
    popups = sorted(k.decode() if isinstance(k, bytes) else k for k in conn.keys("megaplan:livecall:demo:*"))
    return {"rows": rows, "enabled": enabled, "jobs": sorted(jobs), "live": live, "popups": popups}


def still_live(app, call_id: str) -> bool:
    return app.extensions["cabinet"].pbx.live_call("demo", call_id) is not None


# -- the plugin's pages, by demo's ids ---------------------------------------------------------

def test_demos_credential_cannot_be_read_changed_or_deleted(app, tenants, megaplan_sandbox):
    client, demo_credential = tenants.client, tenants.demo_credential
    before = demo_state(app)
    page = client.get(f"/plugins/megaplan/credentials/{demo_credential}")
    assert page.status_code == 404
    assert "Песочница" not in page.text and SANDBOX_LOGIN not in page.text
    edit = client.post(f"/plugins/megaplan/credentials/{demo_credential}", data={
        "title": "Взломано", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD,
        "domain": megaplan_sandbox.url})
    assert edit.status_code == 404
    delete = client.post(f"/plugins/megaplan/credentials/{demo_credential}/delete", data={"confirm": "y"})
    assert delete.status_code == 404
    assert demo_state(app) == before


def test_demos_credential_cannot_be_chosen_on_others_settings_page(app, tenants):
    client = tenants.client
    before = demo_state(app)
    response = client.post("/plugins/megaplan/", data={
        "credential_id": str(tenants.demo_credential), "active": "y", "default_responsible_id": "1000003",
        "account_id": "demo"})
    assert response.status_code in (400, 403, 404)
    assert "Песочница" not in response.text  # demo's credential is not even offered
    with app.app_context():
        assert db.session.get(Settings, "other").credential_id == tenants.other_credential
    assert demo_state(app) == before


def test_account_wide_actions_act_on_the_logged_in_account_only(app, tenants):
    """No id in these URLs: smuggled ids and account names must not redirect them to demo."""
    client = tenants.client
    before = demo_state(app)
    for path in ["/plugins/megaplan/employees/refresh", "/plugins/megaplan/secret", "/plugins/megaplan/check"]:
        response = client.post(path, data={"credential_id": str(tenants.demo_credential), "account_id": "demo",
                                           "account": "demo", "next": "/accounts/demo/"})
        assert response.status_code in (302, 303, 400, 403, 404), path
        assert demo_state(app) == before, path
    # demo's secret still opens demo's API (the rotation was other's own)
    hangup = client.post(f"/plugins/megaplan/api/{tenants.demo_key}/hangup", json={"call_id": "NOPE"},
                         headers={"Authorization": f"Bearer {tenants.demo_secret}"})
    assert hangup.status_code == 404


def test_the_journal_shows_and_retries_none_of_demos_calls(app, tenants):
    client = tenants.client
    before = demo_state(app)
    for query in ["", "?state=failed", "?account_id=demo", "?account=demo&state=pending", "?date=2026-11-26"]:
        page = client.get(f"/plugins/megaplan/journal/{query}")
        assert page.status_code == 200
        assert tenants.failed_call not in page.text and tenants.live not in page.text, query
    polled = client.get(f"/plugins/megaplan/journal/rows.json?ids={tenants.failed_id}")
    assert polled.status_code == 200 and polled.get_json() == {"rows": []}  # the poll sees none of demo's
    retry = post_form(client, f"/plugins/megaplan/journal/{tenants.failed_id}/retry", {},
                      page="/plugins/megaplan/journal/")
    assert retry.status_code == 404
    assert demo_state(app) == before
    with app.app_context():
        row = db.session.get(OutboxEntry, tenants.failed_id)
        assert row.state == OutboxEntry.FAILED and row.account_id == "demo"


def test_status_json_is_the_logged_in_accounts_own(app, tenants):
    client = tenants.client
    if client.get("/plugins/megaplan/status.json").status_code == 404:
        pytest.skip("no status.json in this version")
    for query in ["", "?account_id=demo", "?account=demo"]:
        response = client.get(f"/plugins/megaplan/status.json{query}")
        assert response.status_code == 200 and response.is_json
        text = response.get_data(as_text=True)
        assert tenants.failed_call not in text and tenants.live not in text and tenants.demo_key not in text
        assert "Песочница" not in text
        assert "Injected failure" not in text  # demo's last error


def test_the_cabinet_pages_of_demo_are_closed_to_other(app, tenants):
    client = tenants.client
    before = demo_state(app)
    assert client.get("/accounts/demo/").status_code in (403, 404)
    assert "demo-crm-token" not in client.get("/accounts/other/").text
    # the plugin switch is the logged-in account's
    response = client.post("/plugins/", data={"key": "megaplan", "account_id": "demo", "account": "demo"})
    assert response.status_code in (302, 400)
    assert demo_state(app) == before
    assert demo_state(app)["enabled"] is True


def test_the_simulator_cannot_reach_demos_calls(app, tenants):
    client = tenants.client
    before = demo_state(app)
    for action in ["hangup", "answer", "missed", "busy"]:
        response = client.post("/simulator/action", data={"call_id": tenants.live, "action": action,
                                                          "user": "ivanov"})
        assert response.status_code in (302, 303, 400, 403, 404)
        assert still_live(app, tenants.live), action
    # demo's employees and numbers are not other's choices
    client.post("/simulator/outgoing", data={"out-user": "ivanov", "out-phone": "79161234567",
                                             "out-virtual_number": "74950000001"})
    client.post("/simulator/incoming", data={"in-users": "ivanov", "in-phone": "79161234567",
                                             "in-virtual_number": "74950000001"})
    assert demo_state(app) == before


# -- the Megaplan API, by key -----------------------------------------------------------------

def api(client, key, secret, action, body):
    return client.post(f"/plugins/megaplan/api/{key}/{action}", json=body,
                       headers={"Authorization": f"Bearer {secret}"})


def test_one_accounts_key_and_secret_act_on_its_own_calls_only(app, tenants):
    t = tenants
    before = demo_state(app)
    # demo's calls through other's own, valid key and secret: unknown
    assert api(t.client, t.other_key, t.other_secret, "hangup", {"call_id": t.live}).status_code == 404
    assert api(t.client, t.other_key, t.other_secret, "hangup", {"megaplan_call_id": t.popup_id}).status_code == 404
    assert api(t.client, t.other_key, t.other_secret, "hangup", {"call_id": t.failed_call}).status_code == 404
    # crossed keys and secrets: not authorised at all
    for key, secret in [(t.demo_key, t.other_secret), (t.other_key, t.demo_secret)]:
        for action, body in [("hangup", {"call_id": t.live}), ("call", {"phone": "79161234567",
                                                                        "internal_number": "101"})]:
            response = api(t.client, key, secret, action, body)
            assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    # other's key cannot ring demo's employees (101 is demo's ivanov, not other's)
    call = api(t.client, t.other_key, t.other_secret, "call", {"phone": "79161234567", "internal_number": "101"})
    assert call.status_code == 409
    assert still_live(app, t.live)
    assert demo_state(app) == before
    # and demo's own pair still works on demo's call
    assert api(t.client, t.demo_key, t.demo_secret, "hangup", {"call_id": t.live}).status_code == 200
    assert not still_live(app, t.live)


# -- the PBX endpoint, by crm_token -----------------------------------------------------------

def test_one_accounts_crm_token_cannot_push_into_another(app, tenants, client):
    t = tenants
    before = demo_state(app)
    pushes = [
        {"cmd": "event", "type": "INCOMING", "phone": "79160000000", "callid": "ATTACK1", "user": "ivanov",
         "diversion": "74950000001"},
        {"cmd": "event", "type": "COMPLETED", "phone": "79161234567", "callid": t.live, "user": "ivanov"},
        {"cmd": "history", "type": "in", "status": "Success", "phone": "79161234567", "callid": t.live,
         "user": "ivanov", "start": "20261126T100000Z", "duration": "5", "diversion": "74950000001"},
        {"cmd": "contact", "phone": "79161234567", "callid": "ATTACK2"},
    ]
    for fields in pushes:
        for token in [OTHER["crm_token"], "", "demo-crm-token\x00", "DEMO-CRM-TOKEN", "demo-crm-toke"]:
            response = client.post("/pbx/demo/crm", data={**fields, "crm_token": token})
            assert response.status_code == 401, (fields["cmd"], token, response.status_code)
            response = client.post("/pbx/demo/crm", json={**fields, "crm_token": token})
            assert response.status_code == 401, (fields["cmd"], token, response.status_code)
    assert still_live(app, t.live)
    assert demo_state(app) == before
    # other's own endpoint with other's token may end a call of the same id: its own, not demo's
    for fields in pushes[1:3]:
        assert client.post("/pbx/other/crm", data={**fields, "crm_token": OTHER["crm_token"]}).status_code < 500
    assert still_live(app, t.live)
    assert demo_state(app)["rows"]["megaplan_outbox"] == before["rows"]["megaplan_outbox"]
