"""Every endpoint of the stub cabinet and the plugin, every field, hostile values (issue 23).

One hypothesis test draws an endpoint from the app's own URL map (a new endpoint without an
entry in ``FIELDS`` fails ``test_every_endpoint_is_fuzzed``), a method, hostile path arguments
and a body of its fields (form, query or JSON, lone surrogates as invalid UTF-8 or as escapes),
and asserts:
- no 5xx;
- a refused request (4xx) stored nothing: the cabinet's and the plugin's tables, the PBX's own
  store and the plugin's queues are as they were;
- afterwards every page of the account still renders (stored poison would break one).

Run with ``DATABASE_URL`` for PostgreSQL (CI does). By hand, many examples:
``HYPOTHESIS_EXAMPLES=10000 ./dev test -n0 tests/test_endpoint_fuzz.py``.
"""
import hashlib
import json
import re

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from hostile import (HOSTILE, form_body, form_value, hostile_text, huge_int, json_value, not_500,
                     pct, raw)
from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.delivery import queues

PUSH_FIELDS = ["crm_token", "cmd", "type", "status", "phone", "diversion", "user", "ext", "telnum",
               "callid", "start", "duration", "wait", "link", "rating", "groupRealName", "direction"]
SETTINGS_FIELDS = ["credential_id", "active", "filter_by_numbers", "virtual_numbers", "default_responsible_id",
                   "route_to_manager", "create_client_on_incoming", "create_contact_on_outgoing",
                   "create_communication", "communication_types", "save_unknown_employees",
                   "unknown_employee_user_id", "time_zone", "recording_days", "copy_recordings",
                   "callback_within", "work_days", "work_start", "work_end", "escalate_to", "supervisor_id",
                   "deal_manager_first", "route_fallback", "route_respect_hours", "link_open_deal"]
CREDENTIAL_FIELDS = ["title", "login", "password", "domain"]
API_FIELDS = ["phone", "employee_id", "internal_number", "call_id", "megaplan_call_id"]
# endpoint -> the fields its views read (a hostile key of any name is drawn as well)
FIELDS = {
    "cabinet.index": [], "cabinet.account": [], "cabinet.login": ["login", "password", "next"],
    "cabinet.logout": [], "cabinet.plugins": ["key", "enable"],
    "pbx.push": PUSH_FIELDS, "pbx.simulator": [], "pbx.public_recording": [],
    "pbx.simulate_incoming": ["in-phone", "in-virtual_number", "in-users", "in-ask_route"],
    "pbx.simulate_outgoing": ["out-user", "out-phone", "out-virtual_number"],
    "pbx.simulate_action": ["call_id", "action", "user"], "pbx.simulate_push_loss": ["percent"],
    "megaplan.settings": SETTINGS_FIELDS, "megaplan.check_connection": ["credential_id"],
    "megaplan.add_credential": CREDENTIAL_FIELDS, "megaplan.edit_credential": CREDENTIAL_FIELDS,
    "megaplan.delete_credential": [],  # never "confirm": the fuzz keeps its credential
    "megaplan.refresh_employees": ["next", "credential_id"], "megaplan.rotate_secret": ["next"],
    "megaplan.status_json": [], "megaplan.static": [],
    "megaplan_journal.journal": ["state", "date", "page"], "megaplan_journal.export": ["state", "date"],
    "megaplan_journal.retry": ["next"], "megaplan_journal.retry_failed": ["next"],
    "megaplan_recordings.recording": [], "megaplan.revoke_recording_links": [],
    "megaplan_callbacks.report": ["period"], "megaplan_callbacks.export": ["period"],
    "megaplan_numbers.choose": ["contractor_id", "back"],
    "megaplan.transfer_skipped": ["dismiss"], "pbx.simulate_rating": ["call_id", "score"], "megaplan_journal.rows": ["ids"],
    "megaplan_api.call": API_FIELDS, "megaplan_api.hangup": API_FIELDS, "megaplan_api.unknown_address": API_FIELDS,
    "static": [],
}
PUSH_VALUES = ["event", "history", "contact", "rating", "INCOMING", "OUTGOING", "ACCEPTED", "COMPLETED",
               "CANCELLED", "TRANSFERRED", "in", "out", "Success", "missed", "Cancel", "Busy", "ivanov",
               "demo-crm-token", "74950000001", "79161234567", "00010101T000000Z", "99991231T235959Z",
               "20260230T120000Z", "19991231T235959Z", "20261204T120000Z", "20261204T1200", "²", "٣", "-1",
               "99999999999999999999", "https://records.example/a.mp3", "javascript:alert(1)"]
field_value = st.one_of(form_value, st.sampled_from(PUSH_VALUES))
path_value = st.one_of(hostile_text, huge_int.map(str), st.sampled_from(["demo", "other", "1", "0", "megaplan.css"]))
PAGES = ["/accounts/demo/", "/plugins/", "/simulator/", "/plugins/megaplan/",
         "/plugins/megaplan/credentials/1", "/plugins/megaplan/credentials/new", "/plugins/megaplan/status.json",
         "/plugins/megaplan/journal/", "/plugins/megaplan/journal/?state=failed",
         "/plugins/megaplan/journal/?state=pending", "/plugins/megaplan/journal/export.csv"]


@pytest.fixture
def app_config():
    # The fuzz logs in before every example and sends /login its hostile values: no lock-out.
    return {"CABINET_LOGIN_MAX_PER_LOGIN": 10**9, "CABINET_LOGIN_MAX_PER_ADDRESS": 10**9}


def _rules(app):
    return [rule for rule in app.url_map.iter_rules()]


def test_every_endpoint_is_fuzzed(app):
    assert {rule.endpoint for rule in _rules(app)} == set(FIELDS)


def _stored(app) -> str:
    """A digest of everything a request could have stored: every table of the cabinet and the
    plugin, the PBX's own store, and the plugin's queued jobs."""
    digest = hashlib.sha256()
    host = app.extensions["cabinet"]
    with app.app_context():
        with db.engine.connect() as conn:
            for name in sorted(sa.inspect(conn).get_table_names()):
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                order = list(table.primary_key.columns) or list(table.columns)
                for row in conn.execute(sa.select(table).order_by(*order)):
                    digest.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
    with host.pbx.store.engine.connect() as conn:
        for name in ("pbx_account", "pbx_user", "pbx_number", "pbx_call", "pbx_recording"):
            digest.update(repr(conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1")).all()).encode())
    redis = app.extensions["megaplan"].redis
    for name in queues.QUEUES:
        digest.update(repr(sorted(queues.queue(name, redis).job_ids)).encode())
    return digest.hexdigest()


def _url(rule, args: dict) -> str:
    url = rule.rule
    for name in rule.arguments:
        url = re.sub(rf"<(?:[a-z]+:)?{name}>", pct(args[name]).replace("%2F", "/"), url)
    return url


@st.composite
def requests(draw, app):
    rule = draw(st.sampled_from(sorted(_rules(app), key=lambda r: r.rule + r.endpoint)))
    method = draw(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})))
    args = {name: draw(path_value) for name in rule.arguments}
    names = st.sampled_from(FIELDS[rule.endpoint] or ["x"]) | hostile_text.filter(lambda k: k.strip() != "confirm")
    body_kind = draw(st.sampled_from(["form", "query", "json-ascii", "json-utf8", "json-any"]))
    if body_kind == "json-any":
        fields = draw(json_value)
    else:
        fields = draw(st.dictionaries(names, field_value | st.lists(field_value, max_size=3)
                                      | (huge_int if body_kind.startswith("json") else field_value)
                                      | (json_value if body_kind.startswith("json") else field_value),
                                      max_size=8))
    return rule, method, args, body_kind, fields


def _send(client, method: str, url: str, body_kind: str, fields):
    if body_kind == "query" or method == "GET":
        query = form_body(fields) if isinstance(fields, dict) else b""
        return client.open(url, method=method, query_string=query.decode("ascii"))
    if body_kind == "form":
        return client.open(url, method=method, data=form_body(fields),
                           content_type="application/x-www-form-urlencoded")
    ascii_only = body_kind != "json-utf8"
    body = json.dumps(fields, ensure_ascii=ascii_only, default=str)
    return client.open(url, method=method, data=raw(body), content_type="application/json")


@pytest.mark.usefixtures("integration")
def test_any_request_to_any_endpoint_is_never_a_5xx_and_stores_nothing_when_refused(app, client, auth,
                                                                                    enable_plugin):
    @HOSTILE
    @given(data=st.data())
    def fuzz(data):
        rule, method, args, body_kind, fields = data.draw(requests(app))
        if rule.endpoint == "pbx.push" and data.draw(st.booleans()):
            args["account_id"] = "demo"  # past the door's token check as often as not
            if isinstance(fields, dict):
                fields.setdefault("crm_token", "demo-crm-token")
        assert auth.login().status_code == 302
        before = _stored(app)
        response = not_500(_send(client, method, _url(rule, args), body_kind, fields),
                           rule.rule, method, args, body_kind, fields)
        if 400 <= response.status_code < 500:
            assert _stored(app) == before, (rule.rule, method, response.status_code, fields)
        app.extensions["cabinet"].pbx.push_loss.clear()
        # every page of the account still renders, whatever the request stored
        enable_plugin()
        assert auth.login().status_code == 302
        for page in PAGES:
            response = client.get(page)
            assert response.status_code == 200, (page, response.status_code, rule.rule, fields)
            response.get_data()  # the CSV streams: all of it, not only its first line

    fuzz()
