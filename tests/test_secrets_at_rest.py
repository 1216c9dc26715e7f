"""Secrets stay secret at rest (issue 13): the Megaplan password, access and refresh tokens and
the telephony app's secret never appear in plain text in any table, any Redis key (job data
decompressed) or any log line of a full call, token refresh and click-to-call included.
"""
import logging
import re
import zlib

import pytest
import sqlalchemy as sa

from host_stub.db import db
from host_stub.testing import SANDBOX_PASSWORD, post_form, run_jobs
from megaplan_plugin import crypto
from megaplan_plugin.models import Settings


@pytest.fixture
def issued_tokens(megaplan_sandbox):
    """Every access and refresh token the sandbox hands out (rotated ones included)."""
    state = megaplan_sandbox.state
    issued = []
    original = state.issue_tokens

    def recording(employee_id):
        tokens = original(employee_id)
        issued.extend([tokens["access_token"], tokens["refresh_token"]])
        return tokens
    state.issue_tokens = recording
    yield issued
    state.issue_tokens = original


def run_jobs_logged(app) -> int:
    """Like the ``rq_worker`` fixture, but the worker logs at DEBUG too."""
    return run_jobs(app, logging_level="DEBUG")


def forms_of(secret: str) -> set[bytes]:
    """The secret as bytes, and the encodings a careless write would leave it in."""
    import base64
    from urllib.parse import quote
    raw = secret.encode()
    return {raw, quote(secret, safe="").encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw),
            raw.hex().encode()}


def database_rows(app):
    """(table, column, value) of every row of every table, read with plain SQL."""
    with app.app_context():
        engine = db.engine
        tables = sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            for table in tables:
                result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row):
                        yield table, column, value


def as_bytes(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def expand(blob: bytes) -> list[bytes]:
    """The blob and, when it is zlib data (RQ's job payloads), its decompressed bytes."""
    out = [blob]
    try:
        out.append(zlib.decompress(blob))
    except zlib.error:
        pass
    return out


def redis_values(conn):
    """(key, bytes) of every value in the plugin's Redis, whatever the key's type."""
    for key in conn.scan_iter(count=1000):
        kind = conn.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        values = [key]
        if kind == "string":
            values.append(conn.get(key))
        elif kind == "hash":
            for field, value in conn.hgetall(key).items():
                values += [field, value]
        elif kind == "list":
            values += conn.lrange(key, 0, -1)
        elif kind == "set":
            values += list(conn.smembers(key))
        elif kind == "zset":
            values += [member for member, _ in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _, fields in conn.xrange(key):
                for field, value in fields.items():
                    values += [field, value]
        for value in values:
            for blob in expand(as_bytes(value)):
                yield key, blob


def full_call(app, client, pbx, megaplan_sandbox, integration, issued_tokens):
    """Credentials typed in again, a refresh, a call with popup and history, click-to-call."""
    # the credential form posts the password again (the stored one is replaced)
    response = post_form(client, "/plugins/megaplan/credentials/1", {
        "title": "Песочница", "login": "admin@sandbox.megaplan.ru", "password": SANDBOX_PASSWORD,
        "domain": megaplan_sandbox.url})
    assert response.status_code == 302, response.text[-1500:]
    integration(create_communication="y", create_client_on_incoming="y")
    # the telephony app's secret, shown once
    response = post_form(client, "/plugins/megaplan/secret", {}, page="/plugins/megaplan/")
    secret = re.search(r'id="new-secret">([^<]+)<', client.get(response.location).text).group(1)
    with app.app_context():
        key = db.session.get(Settings, "demo").api_key

    megaplan_sandbox.state.expire_access_tokens()  # the next job refreshes the tokens
    call = pbx.new_call(phone="79035551234")
    call.ring("ivanov")
    run_jobs_logged(app)
    call.answer("ivanov")
    run_jobs_logged(app)
    call.history(status="Success", user="ivanov", duration=42, link="https://records.example/1.mp3")
    megaplan_sandbox.state.fail_next(1, status=500, path_prefix="/api/v3/callInfo")  # an error is logged
    run_jobs_logged(app)
    # click-to-call and «Завершить» with the secret
    headers = {"Authorization": f"Bearer {secret}"}
    made = client.post(f"/plugins/megaplan/api/{key}/call", json={"phone": "79161234567", "internal_number": "101"},
                       headers=headers)
    assert made.status_code == 200, made.get_json()
    run_jobs_logged(app)
    assert client.post(f"/plugins/megaplan/api/{key}/hangup", json={"call_id": made.get_json()["call_id"]},
                       headers=headers).status_code == 200
    assert client.post(f"/plugins/megaplan/api/{key}/hangup", json={"call_id": "X"},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    run_jobs_logged(app)
    client.get("/plugins/megaplan/")
    client.get("/plugins/megaplan/journal/")
    assert len(issued_tokens) >= 4, "the flow should have refreshed the tokens at least once"
    return {"Megaplan password": SANDBOX_PASSWORD, "telephony app secret": secret,
            **{f"Megaplan token {t[:6]}…": t for t in issued_tokens}}


@pytest.fixture
def after_a_full_call(issued_tokens, app, client, integration, pbx, megaplan_sandbox, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger: every logger of the app, the worker, RQ
    secrets = full_call(app, client, pbx, megaplan_sandbox, integration, issued_tokens)
    return secrets, caplog


def _leaks(secrets: dict, blob: bytes):
    for name, secret in secrets.items():
        if any(form in blob for form in forms_of(secret)):
            yield name


def test_no_secret_in_any_table(app, after_a_full_call):
    secrets, _ = after_a_full_call
    found = [(table, column, name) for table, column, value in database_rows(app)
             for name in _leaks(secrets, as_bytes(value))]
    assert found == []
    with app.app_context():  # and the encrypted ones are there, readable with the key
        row = db.session.execute(sa.text(
            "SELECT password_enc, access_token_enc, refresh_token_enc FROM megaplan_credential")).one()
        assert crypto.decrypt(row.password_enc) == SANDBOX_PASSWORD
        assert crypto.decrypt(row.access_token_enc) in secrets.values()


def test_no_secret_in_redis(app, after_a_full_call):
    secrets, _ = after_a_full_call
    conn = app.extensions["megaplan"].redis
    keys = list(conn.scan_iter())
    assert any(k.startswith(b"rq:job:") for k in keys), "the scan should see the jobs"
    found = sorted({(key, name) for key, blob in redis_values(conn) for name in _leaks(secrets, blob)})
    assert found == []


def test_no_secret_in_the_logs(app, after_a_full_call):
    secrets, caplog = after_a_full_call
    records = caplog.get_records("setup") + caplog.records  # the call ran in the fixture
    assert any(r.name.startswith("megaplan_plugin") for r in records), "the plugin's logs are captured"
    assert any(r.levelno == logging.DEBUG for r in records), "DEBUG lines are captured"
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        text += repr(getattr(record, "__dict__", {}))
        for name in _leaks(secrets, text.encode("utf-8", "surrogatepass")):
            found.append((record.name, record.levelname, name, record.getMessage()[:200]))
    assert found == []


# -- constant-time comparisons ------------------------------------------------------------------

def test_secret_comparisons_are_constant_time(monkeypatch):
    """The API secret is compared by hmac.compare_digest (its hash, so lengths never differ)."""
    import hmac
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(crypto.hmac, "compare_digest", spy)
    stored = crypto.hash_api_secret("right")
    assert crypto.api_secret_matches("right", stored) is True
    assert crypto.api_secret_matches("wrong", stored) is False
    assert crypto.api_secret_matches("right", None) is False
    assert len(calls) == 2 and all(len(a) == len(b) == 64 for a, b in calls)


def test_unknown_keys_cost_a_comparison_too(app, configured, monkeypatch):
    """An unknown key is compared against a dummy hash: its answer takes the same work."""
    compared = []
    real = crypto.api_secret_matches

    def spy(secret, stored_hash):
        compared.append(stored_hash)
        return real(secret, stored_hash)
    monkeypatch.setattr("megaplan_plugin.web.telephony_api.api_secret_matches", spy)
    for key in ["0" * 32, "x\x00", "k" * 100]:
        response = configured.post(f"/plugins/megaplan/api/{key}/hangup", json={"call_id": "X"},
                                   headers={"Authorization": "Bearer guess"})
        assert response.status_code == 401
    assert len(compared) == 3 and all(stored and len(stored) == 64 for stored in compared)


def test_crm_token_is_compared_in_constant_time(app, client, monkeypatch):
    """The PBX endpoint (host_stub/pbx_views.py) compares crm_token with hmac.compare_digest,
    for a known account and for an unknown one alike."""
    from host_stub import pbx_views
    compared = []
    real = pbx_views.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)
    monkeypatch.setattr(pbx_views.hmac, "compare_digest", spy)
    push = {"cmd": "contact", "phone": "79161234567", "callid": "X"}
    assert client.post("/pbx/demo/crm", data={**push, "crm_token": "demo-crm-tokem"}).status_code == 401
    assert client.post("/pbx/nobody/crm", data={**push, "crm_token": "demo-crm-token"}).status_code == 401
    assert client.post("/pbx/demo/crm", data={**push, "crm_token": "demo-crm-token"}).status_code == 200
    assert len(compared) == 3
