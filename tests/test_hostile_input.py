"""Hostile input to every web face of the plugin never makes a 500 (issue 13).

Strategies carry what broke PostgreSQL (NUL, which its text cannot hold; integers beyond its
``integer``; the calendar's last day) and what breaks encoders (lone surrogates, invalid UTF-8),
plus control characters, deep JSON and bodies at the 1 MiB limit. Run with ``DATABASE_URL`` set
to reach PostgreSQL. ``HYPOTHESIS_EXAMPLES`` (default 15) sets the examples per test; a long run
by hand: ``HYPOTHESIS_EXAMPLES=2000 pytest tests/test_hostile_input.py``.

A lone surrogate cannot be encoded into a URL or a form by the test client, so requests here are
built from bytes: text is encoded with ``surrogatepass`` (a lone surrogate becomes the invalid
UTF-8 a hostile client would send) and percent-encoded.
"""
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.web import inputs as web_input
from megaplan_plugin.delivery import queues
from megaplan_plugin.models import OutboxEntry, Credential, Settings
from hostile import (DB_INT_MAX, HOSTILE, LIMIT, api_body, calendar_edge, deep_json, form_value,
                           get_raw_query, hostile_text, huge_int, json_bytes, not_500, pct, post_raw_form,
                           raw)

USES_APP = pytest.mark.usefixtures("integration")  # every test but the unit tests of web_input


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def api(configured, app):
    """(account key, secret) of demo, the secret rotated through the page."""
    response = post_form(configured, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    secret = re.search(r'id="new-secret">([^<]+)<', configured.get(response.location).text).group(1)
    with app.app_context():
        key = db.session.get(Settings, "demo").api_key
    return key, secret


@pytest.fixture
def failed_row(configured, pbx, rq_worker, megaplan_sandbox, app):
    """A journal row in «ошибка» (so «Повторить» has something real to act on)."""
    megaplan_sandbox.state.fail_next(1, status=422, path_prefix="/api/v3/callInfo/history")
    pbx.new_call().history(status="missed", user="pbx", duration=0)
    rq_worker()
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry.id)).scalar_one()


def _queued(app) -> int:
    conn = app.extensions["megaplan"].redis
    return sum(queues.queue(name, conn).count for name in queues.QUEUES)


# -- the unit: web_input -----------------------------------------------------------------------

@HOSTILE
@given(value=hostile_text)
def test_web_input_text_accepts_only_printable_bounded_strings(value):
    try:
        cleaned = web_input.text(value, title="Поле", max_length=64)
    except web_input.InvalidInput as exc:
        assert exc.message
        return
    assert len(value) <= 64 and web_input.is_printable(cleaned)
    cleaned.encode("utf-8")  # no lone surrogate survives
    assert "\x00" not in cleaned


@pytest.mark.parametrize("value,expected", [
    ("1", 1), (DB_INT_MAX, DB_INT_MAX), (str(DB_INT_MAX), DB_INT_MAX), (0, None), ("0", None),
    (-1, None), (DB_INT_MAX + 1, None), ("2147483648", None), ("99999999999999999999", None),
    ("٣", None), ("1\x00", None), ("", None), (True, None), (None, None), ("1.0", None)])
def test_web_input_db_int(value, expected):
    assert web_input.db_int(value) == expected


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "2026-02-30", "tomorrow", "2026-1-1",
                                   "\x00", "\ud800", "２０２６-０１-０１", "10000-01-01"])
def test_web_input_day_refuses_edges_with_a_russian_message(value):
    with pytest.raises(web_input.InvalidInput) as caught:
        web_input.day(value)
    assert re.search("[а-я]", caught.value.message)


# -- the Megaplan API -------------------------------------------------------------------------

def _secret_header(secret: str) -> str:
    """A hostile secret as the latin-1 a header carries (no line breaks: those split headers)."""
    return raw(secret).decode("latin-1").replace("\n", "").replace("\r", "")


@USES_APP
@HOSTILE
@given(body=api_body, action=st.sampled_from(["call", "hangup"]), mode=st.sampled_from(["ascii", "invalid-utf8"]),
       key=st.one_of(st.just("valid"), st.just("valid"), hostile_text),
       secret=st.one_of(st.just("valid"), st.just("valid"), hostile_text))
def test_api_never_answers_500(client, api, body, action, mode, key, secret):
    valid_key, valid_secret = api
    assume(key not in ("", ".", ".."))
    url_key = valid_key if key == "valid" else pct(key)
    header = "Bearer " + (valid_secret if secret == "valid" else _secret_header(secret))
    response = not_500(client.post(f"/plugins/megaplan/api/{url_key}/{action}", data=json_bytes(body, mode),
                                   content_type="application/json", headers={"Authorization": header}),
                       key, secret, body, mode)
    if key != "valid" and "/" in key:  # no API route at all; "//" is merged by a redirect
        assert response.status_code in (308, 404)
        return
    assert response.is_json
    payload = response.get_json()
    if response.status_code >= 400:
        assert set(payload) == {"error", "message"} and re.search("[а-яА-Я]", payload["message"])
    if key != "valid":  # a key of any shape is an unknown key
        assert response.status_code == 401
    elif secret != "valid":
        assert response.status_code == 401


@USES_APP
def test_values_no_table_can_hold_are_400_and_keys_401(client, api):
    key, secret = api
    headers = {"Authorization": f"Bearer {secret}"}

    def post(action, body, key=key):
        return client.post(f"/plugins/megaplan/api/{key}/{action}", data=json_bytes(body, "ascii"),
                           content_type="application/json", headers=headers)

    for field in ["call_id", "megaplan_call_id"]:
        for value in ["a\x00b", "\x00", "\ud800", "x\x1by", "9" * 129, ["a"], {"a": 1}, True]:
            response = post("hangup", {field: value})
            assert response.status_code == 400, (field, value, response.get_json())
            assert response.get_json()["error"] == "bad_request" and field in response.get_json()["message"]
    for body, error in [({"phone": "79161234567", "employee_id": "10\x0000002"}, "bad_request"),
                        ({"phone": "79161234567", "internal_number": "1\x0001"}, "bad_request"),
                        ({"phone": "79161234567", "employee_id": "\udc80"}, "bad_request"),
                        ({"phone": "79161234567", "employee_id": 10**40}, "bad_request"),
                        ({"phone": "7916\x001234567", "internal_number": "101"}, "invalid_phone")]:
        response = post("call", body)
        assert response.status_code == 400 and response.get_json()["error"] == error, body
    for bad_key in ["%00", "ab%00cd", "%ED%A0%80", "%FF", "x" * 65, "a" * 10000, key + "%00"]:
        response = post("hangup", {"call_id": "X"}, key=bad_key)
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized", bad_key


def _sized_body(size: int, filler: str) -> bytes:
    """A JSON object of exactly ``size`` bytes: one long call_id."""
    head, tail, unit = b'{"call_id": "', b'"}', filler.encode()
    body = head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail
    return body + b" " * (size - len(body))


@USES_APP
@HOSTILE
@given(shape=st.one_of(
    st.tuples(st.just("deep"), st.sampled_from([10, 900, 1100, 5000, 100_000, 10**7]),
              st.sampled_from(["array", "object", "open", "field"])),
    st.tuples(st.just("sized"), st.one_of(st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1]),
                                          st.integers(LIMIT - 2048, LIMIT + 2048)),
              st.sampled_from(["9", " ", "\\u0000", "\\ud800", "й"]))),
       action=st.sampled_from(["call", "hangup"]))
def test_deep_and_large_bodies_are_400_or_413(client, api, shape, action):
    key, secret = api
    kind, size_or_depth, variant = shape
    data = (deep_json(size_or_depth, variant) if kind == "deep" else _sized_body(size_or_depth, variant))
    response = not_500(client.post(f"/plugins/megaplan/api/{key}/{action}", data=data,
                                   content_type="application/json",
                                   headers={"Authorization": f"Bearer {secret}"}), shape)
    assert response.is_json
    assert response.status_code == (413 if len(data) > LIMIT else 400), (shape, len(data))


# -- the settings, credential and cabinet forms ------------------------------------------------

FORMS = {
    "/plugins/megaplan/": ["credential_id", "active", "filter_by_numbers", "virtual_numbers",
                           "default_responsible_id", "route_to_manager", "create_client_on_incoming",
                           "create_contact_on_outgoing", "create_communication", "communication_types",
                           "save_unknown_employees", "unknown_employee_user_id", "csrf_token"],
    "/plugins/megaplan/credentials/new": ["title", "login", "password", "domain", "csrf_token"],
    "/plugins/megaplan/credentials/1": ["title", "login", "password", "domain", "csrf_token"],
    "/plugins/megaplan/credentials/1/delete": ["csrf_token"],  # no "confirm": the credential stays
    "/plugins/megaplan/employees/refresh": ["next", "csrf_token", "credential_id"],
    "/plugins/megaplan/secret": ["next", "csrf_token"],
    "/login": ["login", "password", "next", "csrf_token"],
    "/plugins/": ["key", "enable", "csrf_token"],
}


@USES_APP
@HOSTILE
@given(path=st.sampled_from(sorted(FORMS)), data=st.data())
def test_forms_never_answer_500(configured, path, data):
    names = st.sampled_from(FORMS[path]) | hostile_text.filter(lambda k: k.strip() != "confirm")
    form = data.draw(st.dictionaries(names, form_value | st.lists(form_value, max_size=3), max_size=10))
    not_500(post_raw_form(configured, path, form), path, form)


@USES_APP
@HOSTILE
@given(field=st.sampled_from(["title", "login", "password", "domain"]),
       bad=st.lists(st.one_of(st.characters(categories=["Cc"]), st.sampled_from(["\x00", "\x1b", "\x7f"])),
                    min_size=1, max_size=3).map("".join),
       path=st.sampled_from(["/plugins/megaplan/credentials/new", "/plugins/megaplan/credentials/1"]))
def test_control_characters_in_credentials_are_refused_beside_the_field(
        configured, app, megaplan_sandbox, field, bad, path):
    data = {"title": "Hostile", "login": "admin@sandbox.megaplan.ru", "password": "sandbox-secret-42",
            "domain": megaplan_sandbox.url}
    value = data[field] + bad + "x"  # never only whitespace: DataRequired would answer first
    data[field] = value
    with app.app_context():
        before = [(c.id, c.title, c.login, c.base_url, c.password_enc) for c in
                  db.session.execute(db.select(Credential).order_by(Credential.id)).scalars()]
    response = post_raw_form(configured, path, data)
    assert response.status_code == 400, (field, value)
    error = re.search(rf'id="field-{field}".*?</div>', response.text, re.S).group(0)
    assert "Недопустимые символы" in error
    with app.app_context():
        after = [(c.id, c.title, c.login, c.base_url, c.password_enc) for c in
                 db.session.execute(db.select(Credential).order_by(Credential.id)).scalars()]
    assert after == before


def test_credential_ids_outside_the_integer_range_are_404(logged_in, enable_plugin):
    enable_plugin()
    configured = logged_in
    for credential_id in ["2147483648", "99999999999999999999"]:
        for path in ["/plugins/megaplan/credentials/{id}", "/plugins/megaplan/credentials/{id}/delete"]:
            response = configured.post(path.format(id=credential_id), data={})
            assert response.status_code == 404, (path, credential_id)


# -- the journal ------------------------------------------------------------------------------

row_id_text = st.one_of(huge_int.map(str), st.sampled_from([
    "2147483647", "2147483648", "99999999999999999999", "0", "00000000001", "1e3", "%00", "%ED%A0%80",
    "-1", "+1", "٣", "%201", "1%00"]))


@USES_APP
@HOSTILE
@given(action=st.one_of(
    st.tuples(st.just("filter"), st.dictionaries(st.sampled_from(["state", "date", "x"]), calendar_edge,
                                                 max_size=3)),
    st.tuples(st.just("retry"), row_id_text)))
def test_journal_never_answers_500(configured, app, failed_row, action):
    kind, value = action
    if kind == "filter":
        response = not_500(get_raw_query(configured, "/plugins/megaplan/journal/", value), value)
        assert response.status_code == 200
        return
    with app.app_context():
        before = db.session.execute(db.select(OutboxEntry.state, OutboxEntry.attempts, OutboxEntry.updated_at)).one()
    response = not_500(configured.post(f"/plugins/megaplan/journal/{value}/retry"), value)
    if value.isdigit() and int(value) != failed_row:
        assert response.status_code == 404
        with app.app_context():
            assert db.session.execute(db.select(OutboxEntry.state, OutboxEntry.attempts, OutboxEntry.updated_at)).one() == before


@USES_APP
def test_journal_input_out_of_range_is_a_message_or_404(configured, app, failed_row):
    with app.app_context():
        call_id = db.session.execute(db.select(OutboxEntry.call_id)).scalar_one()
    for date, message in [("9999-12-31", "Дата должна быть между"), ("0001-01-01", "Дата должна быть между"),
                          ("2026-02-30", "Такой даты нет в календаре"), ("tomorrow", "Дата не распознана"),
                          ("%00", "Дата не распознана"), ("%ED%A0%80", "Дата не распознана")]:
        response = configured.get(f"/plugins/megaplan/journal/?date={date}")
        assert response.status_code == 200
        assert message in response.text and "Фильтр по дате не применён" in response.text, date
        assert call_id in response.text  # the filter was dropped, the calls are shown
    response = configured.get("/plugins/megaplan/journal/?state=a%00b")
    assert response.status_code == 200 and "Неизвестное состояние" in response.text

    # «Повторить» of an id the column cannot hold: 404, nothing queued
    queued = _queued(app)
    for row_id in ["2147483648", "99999999999999999999", "0", str(2**63), "4294967296"]:
        assert configured.post(f"/plugins/megaplan/journal/{row_id}/retry").status_code == 404, row_id
    assert _queued(app) == queued

    # and back to the journal page it came from (filters kept), never to another site
    back = configured.post(f"/plugins/megaplan/journal/{failed_row}/retry",
                           headers={"Referer": "http://localhost/plugins/megaplan/journal/?state=failed"})
    assert back.status_code == 302 and back.location.endswith("/plugins/megaplan/journal/?state=failed")
    for referer in ["http://evil.example/plugins/megaplan/journal/?state=failed", "//evil.example/",
                    "http://localhost/plugins/megaplan/journal/?state=%0d%0aSet-Cookie:x", "\x00", "http://["]:
        response = configured.post(f"/plugins/megaplan/journal/{failed_row}/retry", headers={"Referer": referer})
        assert response.status_code == 302 and response.location.endswith("/plugins/megaplan/journal/"), referer


# -- the cabinet's simulator (host_stub/pbx_views.py) -----------------------------------------

SIMULATOR_FIELDS = {
    "/simulator/incoming": ["in-phone", "in-virtual_number", "in-users", "in-ask_route", "csrf_token"],
    "/simulator/outgoing": ["out-user", "out-phone", "out-virtual_number", "csrf_token"],
    "/simulator/action": ["call_id", "action", "user", "csrf_token"],
    "/simulator/push-loss": ["percent", "csrf_token"],
}
SIMULATOR_VALUES = ["ivanov", "petrova", "smirnov", "74950000001", "74950000009", "79161234567",
                    "answer", "hangup", "missed", "busy", "y", "0", "30", "100"]
_PUSH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _known_simulator_defect(form: dict, live: str) -> bool:
    """«Ответить» on a live call with a ``user`` the PBX push parser refuses (over 200 characters
    or a control character) raises PushError out of host_stub/pbx_views.simulate_action: a 500
    (test_simulator_answer_with_a_user_the_push_parser_refuses below, reported)."""
    def first(name):  # WTForms takes the first value of a repeated field
        value = form.get(name)
        return (value[0] if value else None) if isinstance(value, list) else value
    user = first("user")
    if first("call_id") != live or first("action") != "answer" or not user:
        return False
    user = raw(user).decode("utf-8", "replace").strip()
    return len(user) > 200 or bool(_PUSH_CONTROL.search(user))


@USES_APP
@HOSTILE
@given(path=st.sampled_from(sorted(SIMULATOR_FIELDS)), data=st.data())
def test_simulator_forms_never_answer_500(configured, pbx, app, path, data):
    live = pbx.new_call(phone="79161234567").ring("ivanov").call_id
    value = st.one_of(form_value, st.sampled_from(SIMULATOR_VALUES + [live]))
    form = data.draw(st.dictionaries(st.sampled_from(SIMULATOR_FIELDS[path]) | hostile_text,
                                     value | st.lists(value, max_size=3), max_size=6))
    if path == "/simulator/action" and _known_simulator_defect(form, live):
        form["user"] = "ivanov"
    not_500(post_raw_form(configured, path, form), path, form)
    # a valid form on top, so the simulator's real work runs with hostile neighbours
    if path == "/simulator/action":
        form = {**form, "call_id": live, "action": data.draw(st.sampled_from(["answer", "hangup", "missed"]))}
        if _known_simulator_defect(form, live):
            form["user"] = "ivanov"
        not_500(post_raw_form(configured, path, form), path, form)
    app.extensions["cabinet"].pbx.push_loss.clear()


def test_simulator_answer_with_a_user_the_push_parser_refuses(logged_in, pbx):
    configured = logged_in
    for user in ["a" * 201, "iva\x00nov", "iva\x1bnov"]:
        live = pbx.new_call().ring("ivanov").call_id
        response = post_raw_form(configured, "/simulator/action",
                                 {"call_id": live, "action": "answer", "user": user})
        assert response.status_code < 500, user


@pytest.mark.parametrize("path,data", [
    ("/simulator/incoming", {"in-phone": "1" * 20, "in-virtual_number": "74950000001", "in-users": "ivanov"}),
    ("/simulator/outgoing", {"out-phone": "1" * 20, "out-virtual_number": "74950000001", "out-user": "ivanov"}),
])
def test_a_number_the_pbx_would_refuse_is_an_error_beside_the_field_in_the_simulator(logged_in, path, data):
    """20 digits pass the form's pattern but are no phone number to the PBX's push parser."""
    page = logged_in.get("/simulator/").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    if token:
        data = {**data, "csrf_token": token.group(1)}
    response = logged_in.post(path, data=data)
    assert response.status_code == 400
    assert "АТС не примет этот номер" in response.text
    assert logged_in.get("/simulator/").status_code == 200
