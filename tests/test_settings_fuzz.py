"""Arbitrary input from a user or a machine never makes a 500 (hypothesis).

``HYPOTHESIS_EXAMPLES`` raises the examples per test for a long run by hand (never below 40);
the hostile classes one by one (NUL, surrogates, calendar edges, deep JSON, 1 MiB bodies) are in
test_hostile_input.py.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_stub.db import db
from megaplan_plugin.models import Settings

FIELDS = ["credential_id", "active", "filter_by_numbers", "virtual_numbers", "default_responsible_id",
          "route_to_manager", "create_client_on_incoming", "create_contact_on_outgoing",
          "create_communication", "communication_types", "save_unknown_employees",
          "unknown_employee_user_id", "title", "login", "password", "domain", "confirm", "csrf_token"]
text = st.one_of(st.text(max_size=40), st.text(min_size=300, max_size=600),
                 st.sampled_from(["1", "y", "", "1000002", "74950000002", "in", "missed", "-1",
                                  "9" * 30, "\x00", "<script>", "http://127.0.0.1:1"]))
form = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)),
                       st.one_of(text, st.lists(text, max_size=3)), max_size=12)
json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                    text), lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
json_body = st.one_of(json_value, st.dictionaries(
    st.sampled_from(["phone", "employee_id", "internal_number", "call_id", "megaplan_call_id"]),
    json_value, max_size=4))
FUZZ = settings(max_examples=max(40, int(os.environ.get("HYPOTHESIS_EXAMPLES", "40"))), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("configured")


@FUZZ
@given(data=form, path=st.sampled_from([
    "/plugins/megaplan/", "/plugins/megaplan/credentials/new", "/plugins/megaplan/credentials/1",
    "/plugins/megaplan/credentials/1/delete", "/plugins/megaplan/credentials/77",
    "/plugins/megaplan/employees/refresh", "/plugins/megaplan/secret", "/plugins/megaplan/journal/1/retry",
    "/login", "/plugins/", "/simulator/incoming", "/simulator/outgoing", "/simulator/action"]))
def test_forms_never_answer_500(configured, data, path):
    response = configured.post(path, data=data)
    assert response.status_code < 500, (path, data)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["state", "date", "x"]), text, max_size=3))
def test_journal_filters_never_answer_500(configured, query):
    assert configured.get("/plugins/megaplan/journal/", query_string=query).status_code == 200


@FUZZ
@given(body=json_body, action=st.sampled_from(["call", "hangup"]),
       auth=st.one_of(st.none(), text, st.just("valid")), raw=st.one_of(st.none(), st.binary(max_size=50)))
def test_the_megaplan_api_never_answers_500(configured, app, body, action, auth, raw):
    with app.app_context():
        settings_row = db.session.get(Settings, "demo")
        key = settings_row.api_key
    headers = {}
    if auth == "valid":
        from megaplan_plugin.crypto import hash_api_secret
        with app.app_context():
            db.session.get(Settings, "demo").api_secret_hash = hash_api_secret("s3cret")
            db.session.commit()
        headers["Authorization"] = "Bearer s3cret"
    elif auth is not None:
        headers["Authorization"] = "Bearer " + auth.replace("\n", " ").replace("\r", " ")
    url = f"/plugins/megaplan/api/{key}/{action}"
    if raw is not None:
        response = configured.post(url, data=raw, headers=headers, content_type="application/json")
    else:
        response = configured.post(url, json=body, headers=headers)
    assert response.status_code < 500, (body, response.get_data(as_text=True)[:300])
    assert response.is_json


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["cmd", "type", "phone", "callid", "user", "status", "start",
                                               "duration", "diversion", "rating", "ext", "link", "crm_token"]),
                              text, max_size=10))
def test_the_pbx_endpoint_never_answers_500(configured, fields):
    fields.setdefault("crm_token", "demo-crm-token")
    response = configured.post("/pbx/demo/crm", data=fields)
    assert response.status_code < 500, fields
