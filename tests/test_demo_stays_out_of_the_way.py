"""The demo around the product: the sandbox keeps its own cookie and names, click-to-call
carries a virtual number."""
import requests

from host_stub.testing import post_form


def test_the_sandbox_has_a_cookie_of_its_own(megaplan_sandbox):
    with requests.Session() as browser:
        response = browser.post(megaplan_sandbox.url + "/_sandbox/app/settings", data={
            "call_url": "", "hangup_url": "", "secret": ""}, allow_redirects=False)
        assert response.status_code in (302, 303)
        names = {c.name for c in browser.cookies}
    # It flashed a message, so it set a cookie, and not the cabinet's one on the same host.
    assert names == {"megaplan_sandbox_session"}


def test_the_sandbox_page_names_people_and_refreshes_without_reloading(megaplan_sandbox, integration,
                                                                        pbx, rq_worker):
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")
    rq_worker()
    page = requests.get(megaplan_sandbox.url + "/").text
    assert 'http-equiv="refresh"' not in page and 'id="live"' in page
    assert "ContractorHuman 2" not in page and "Кузнецов" in page


def test_click_to_call_carries_the_accounts_number_so_the_number_filter_keeps_it(
        app, integration, rq_worker, megaplan_sandbox):
    integration(filter_by_numbers="y", virtual_numbers=["74950000001"])
    host = app.extensions["cabinet"]
    with app.test_request_context():
        call_id = host.pbx.make_call("demo", "ivanov", "79161234567")
        assert host.pbx.live_call("demo", call_id).virtual_number == "74950000001"
        host.pbx.hangup("demo", call_id)
    rq_worker()
    assert [c["providerId"] for c in megaplan_sandbox.state.calls.values()] == [call_id]
