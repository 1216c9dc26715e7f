"""The whole loop a demo shows: click in the sandbox → the PBX rings → popup → «Завершить» → history."""
import re

import pytest
import requests

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.models import OutboxEntry, Settings

pytestmark = pytest.mark.usefixtures("integration")


@pytest.fixture
def served_app(live_server):
    return live_server


def test_click_in_the_sandbox_rings_pops_up_and_hangs_up(
        served_app, configured, app, megaplan_sandbox, rq_worker):
    response = post_form(configured, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    secret = re.search(r'id="new-secret">([^<]+)<', configured.get(response.location).text).group(1)
    with app.app_context():
        key = db.session.get(Settings, "demo").api_key
    sandbox = requests.Session()
    # pasted with the method in front, as a page may show it: the sandbox's form takes the address
    sandbox.post(f"{megaplan_sandbox.url}/_sandbox/app/settings", data={
        "call_url": f"  POST {served_app}/plugins/megaplan/api/{key}/call ",
        "hangup_url": f"{served_app}/plugins/megaplan/api/{key}/hangup", "secret": secret})

    page = sandbox.post(f"{megaplan_sandbox.url}/_sandbox/app/call",
                        data={"phone": "79161234567", "employee_id": "1000002"}).text
    assert "Звонок в один клик: принято, звонок АТС" in page
    with app.app_context():
        (live,) = app.extensions["cabinet"].pbx.live_calls("demo")
    assert live.direction == "out" and "ivanov" in live.rung
    rq_worker()
    (mp_call,) = megaplan_sandbox.state.calls.values()
    assert mp_call["state"] == "calling" and mp_call["providerId"] == live.call_id
    assert "Завершить" in sandbox.get(megaplan_sandbox.url + "/").text

    page = sandbox.post(f"{megaplan_sandbox.url}/_sandbox/app/hangup", data={"call_id": mp_call["id"]}).text
    assert "«Завершить»: принято" in page
    rq_worker()
    assert mp_call["state"] == "finished"
    with app.app_context():
        assert db.session.execute(db.select(OutboxEntry.state)).scalar_one() == "sent"


def test_the_sandbox_app_form_refuses_what_is_not_an_address(megaplan_sandbox):
    sandbox = requests.Session()
    page = sandbox.post(f"{megaplan_sandbox.url}/_sandbox/app/settings", data={
        "call_url": "ftp://example/call", "hangup_url": "", "secret": "s"}).text
    assert "Не сохранено: Адрес для звонка — не адрес вида http://… или https://…" in page
    assert megaplan_sandbox.state.telephony_app == {}
