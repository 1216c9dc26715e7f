"""The cabinet's door: where login may send you, how often it may be tried, what logout ends,
which cookies and headers every answer carries, how big a body may be, and a start-up that
several processes can run at once."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_lib
import sqlalchemy as sa
from cryptography.fernet import Fernet

from host_stub.db import db
from host_stub.models import Account

ROOT = Path(__file__).resolve().parents[1]
TOO_MANY = re.compile(r"Слишком много попыток входа\. Попробуйте через (\d+) минут[уы]?\.")


def login(client, account="demo", password="demo", **kwargs):
    return client.post("/login", data={"login": account, "password": password}, **kwargs)


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def logged_in_as(client) -> bool:
    return client.get("/plugins/").status_code == 200


# -- 1. `next` stays on this host ------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/\t/evil.example",          # browsers drop the tab: //evil.example
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/\x00/evil.example",
    "/\\evil.example",           # browsers read \ as /
    "\\\\evil.example",
    "/\t\\evil.example",
    "//evil.example",
    "///evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "  javascript:alert(1)",
    "evil.example",
])
def test_login_next_never_leaves_the_host(client, target):
    response = login(client, query_string={"next": target})
    assert response.status_code == 302
    assert response.location == "/"


@pytest.mark.parametrize("target", ["/plugins/", "/simulator/?tab=out", "/accounts/demo/"])
def test_login_next_keeps_local_paths(client, target):
    response = login(client, query_string={"next": target})
    assert response.status_code == 302
    assert response.location == target


def test_login_comes_back_to_the_page_that_asked_for_it(client):
    asked = client.get("/simulator/")
    assert asked.status_code == 302
    response = client.post(asked.location, data={"login": "demo", "password": "demo"})
    assert response.location.startswith("/simulator/")


# -- 2. rate limit per login and per address -------------------------------------------------

def test_ten_failures_lock_the_login_even_for_the_right_password(client):
    for _ in range(10):
        assert login(client, password="wrong").status_code == 401
    refused = login(client)
    assert refused.status_code == 429
    match = TOO_MANY.search(refused.text)
    assert match and 1 <= int(match.group(1)) <= 15
    assert "Вход в личный кабинет" in refused.text  # beside the form, not instead of it
    assert not logged_in_as(client)
    # Another account from the same address is not locked by this login's failures.
    assert login(client, "other", "other").status_code == 302


def test_the_login_lock_follows_the_login_across_addresses(make_app):
    app = make_app()
    for i in range(10):
        client = client_from(app, f"203.0.113.{i}")
        assert login(client, password="wrong").status_code == 401
    fresh = client_from(app, "198.51.100.7")
    assert login(fresh).status_code == 429
    assert not logged_in_as(fresh)


def test_thirty_failures_lock_the_address_for_every_login(make_app):
    app = make_app()
    attacker = client_from(app, "203.0.113.9")
    for i in range(30):
        assert login(attacker, f"nobody{i}", "guess").status_code == 401
    refused = login(attacker)
    assert refused.status_code == 429 and TOO_MANY.search(refused.text)
    assert not logged_in_as(attacker)
    neighbour = client_from(app, "198.51.100.7")
    assert login(neighbour).status_code == 302


def test_a_successful_login_resets_the_login_counter(client):
    for _ in range(2):
        for _ in range(9):
            assert login(client, password="wrong").status_code == 401
        assert login(client).status_code == 302
        client.post("/logout")


def test_counters_live_in_redis_and_expire(app, client):
    login(client, password="wrong")
    limiter = app.extensions["cabinet_ratelimit"]
    keys = [k.decode() for k in limiter.redis.scan_iter("cabinet:login:*")]
    assert len(keys) == 2  # one per login, one per address
    for key in keys:
        assert 0 < limiter.redis.ttl(key) <= 15 * 60
    if os.environ.get("REDIS_URL"):
        real = redis_lib.Redis.from_url(os.environ["REDIS_URL"])
        assert sorted(k.decode() for k in real.scan_iter("cabinet:login:*")) == sorted(keys)


# -- 3. unknown logins cost the same hash work -----------------------------------------------

def test_unknown_login_runs_the_password_hash_check_too(client, monkeypatch):
    import host_stub.models as models
    checked = []
    real = models.check_password_hash

    def counting(pwhash, password):
        checked.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(models, "check_password_hash", counting)
    assert login(client, "demo", "wrong").status_code == 401
    assert login(client, "no-such-account", "wrong").status_code == 401
    assert login(client, "no-such-account", "demo").status_code == 401
    assert len(checked) == 3
    assert checked[1] == checked[2] == checked[0] == "pbkdf2:sha256:1000"  # same method, same cost


# -- 4. logout ends the session on the server -------------------------------------------------

def test_an_old_session_cookie_is_dead_after_logout(app, client):
    assert login(client).status_code == 302
    stolen = client.get_cookie("session").value
    assert client.post("/logout").status_code == 302

    replay = app.test_client()
    replay.set_cookie("session", stolen)
    response = replay.get("/plugins/")
    assert response.status_code == 302 and "/login" in response.location
    assert replay.get("/plugins/megaplan/").status_code == 302  # plugin pages ask the host too

    assert login(client).status_code == 302 and logged_in_as(client)  # logging in again works


def test_a_session_survives_while_nobody_logs_out(app, client):
    assert login(client).status_code == 302
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert logged_in_as(copy) and logged_in_as(client)


# -- 5. Secure cookies over HTTPS -------------------------------------------------------------

def _session_set_cookie(response) -> str:
    cookies = [v for v in response.headers.getlist("Set-Cookie") if v.startswith("session=")]
    assert cookies, response.headers
    return cookies[0]


def test_session_cookie_is_secure_over_https(client):
    response = login(client, base_url="https://localhost")
    assert response.status_code == 302
    assert "; Secure" in _session_set_cookie(response)


def test_session_cookie_is_not_secure_over_plain_http(client):
    assert "; Secure" not in _session_set_cookie(login(client))


def test_a_trusted_proxy_marks_the_cookie_secure(make_app):
    app = make_app({"CABINET_TRUST_PROXY": 1})
    response = login(app.test_client(), headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in _session_set_cookie(response)


def test_forwarded_proto_is_ignored_without_a_trusted_proxy(client):
    response = login(client, headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" not in _session_set_cookie(response)


# -- 6. security headers everywhere -----------------------------------------------------------

def _assert_security_headers(response):
    headers = response.headers
    assert headers.get("X-Frame-Options") == "DENY", response.request.path
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer", "strict-origin")
    assert headers.get("X-Content-Type-Options") == "nosniff"


def test_every_kind_of_answer_carries_the_security_headers(client, enable_plugin):
    enable_plugin()
    answers = [
        client.get("/login"),
        client.get("/plugins/"),                                   # redirect to login
        client.get("/no-such-page"),                               # 404 page
        client.get("/static/cabinet.css"),
        client.post("/pbx/demo/crm", data={"crm_token": "wrong"}),  # JSON 401
        client.post("/plugins/megaplan/api/nope/call", json={}),    # plugin API
    ]
    login(client)
    answers += [client.get("/accounts/demo/"), client.get("/plugins/"), client.get("/simulator/"),
                client.get("/plugins/megaplan/"), client.get("/plugins/megaplan/journal/")]
    for response in answers:
        _assert_security_headers(response)


def test_pages_have_no_inline_code_the_policy_would_block(client, enable_plugin):
    enable_plugin()
    login(client)
    csp = client.get("/login").headers["Content-Security-Policy"]
    strict_scripts = "script-src" in csp or "default-src" in csp
    for url in ["/login", "/accounts/demo/", "/plugins/", "/simulator/", "/plugins/megaplan/",
                "/plugins/megaplan/credentials/new", "/plugins/megaplan/journal/"]:
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.text
        if strict_scripts:
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
            assert not re.search(r"\son[a-z]+\s*=", html), url
            assert "javascript:" not in html, url
        if "style-src" in csp or "default-src" in csp:
            assert "<style" not in html and not re.search(r"\sstyle\s*=", html), url
        for action in re.findall(r'<form[^>]*\baction="([^"]*)"', html):
            assert action.startswith("/") and not action.startswith("//"), (url, action)


# -- 7. size before work ----------------------------------------------------------------------

BIG = "x" * (1024 * 1024 + 1)


def test_an_oversized_form_push_is_refused_with_json(client):
    response = client.post("/pbx/demo/crm", data={"crm_token": "demo-crm-token", "cmd": "event",
                                                  "comment": BIG})
    assert response.status_code == 413
    assert response.is_json and response.get_json()["error"]


def test_an_oversized_json_push_is_refused_with_json(client):
    response = client.post("/pbx/demo/crm", json={"crm_token": "demo-crm-token", "comment": BIG})
    assert response.status_code == 413
    assert response.is_json and response.get_json()["error"]


def test_an_oversized_plugin_api_call_is_refused_with_json(client):
    response = client.post("/plugins/megaplan/api/key/call", json={"phone": BIG})
    assert response.status_code == 413 and response.is_json


def test_an_oversized_form_elsewhere_gets_a_russian_page(client):
    response = login(client, password=BIG)
    assert response.status_code == 413
    assert not response.is_json and "слишком" in response.text.lower()
    assert response.headers.get("X-Frame-Options") == "DENY"


def test_the_body_limit_comes_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("CABINET_MAX_CONTENT_LENGTH", "2048")
    client = make_app().test_client()
    assert client.post("/pbx/demo/crm", data={"crm_token": "x" * 3000}).status_code == 413
    assert client.post("/pbx/demo/crm", data={"crm_token": "x" * 1000}).status_code == 401


# -- 8. several processes start at once --------------------------------------------------------

STARTER = """
import json, sys
from host_stub import create_app
import megaplan_plugin.hooks  # imported before the barrier, so the processes race in create_app
print("ready", flush=True)
sys.stdin.readline()
create_app(json.loads(sys.argv[1]))
"""


def _database_under_test(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'start.sqlite3'}"
    from host_stub.config import _database_url
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "postgresql+")):
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgresql://… (the race is on the server)")
    uri = _database_url(url, None)
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
    engine.dispose()
    return uri


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_three_processes_start_at_once_on_an_empty_database(backend, tmp_path):
    uri = _database_under_test(backend, tmp_path)
    pbx_uri = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    config = {"SQLALCHEMY_DATABASE_URI": uri, "PBX_DATABASE_URL": pbx_uri, "REDIS_URL": None,
              "MEGAPLAN_EMBEDDED_WORKER": False, "MEGAPLAN_SANDBOX_PORT": 0, "CABINET_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SECRET_KEY="start-race", MEGAPLAN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
               PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, json.dumps(config)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    try:
        for proc in procs:  # a barrier: every process is imported and waiting
            assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=60)[1]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]

    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM cabinet_account ORDER BY name")).scalars().all()
            assert names == ["demo", "other"]
            tables = set(sa.inspect(conn).get_table_names())
        assert "cabinet_account" in tables
        assert any(t.startswith("megaplan") for t in tables), tables  # the plugin's tables too
    finally:
        engine.dispose()
    pbx = sa.create_engine(pbx_uri)  # the PBX's own store, seeded once as well
    try:
        with pbx.connect() as conn:
            assert conn.execute(sa.text("SELECT account, login FROM pbx_user ORDER BY login")).all() == [
                ("demo", "ivanov"), ("demo", "petrova"), ("demo", "sidorov"), ("other", "smirnov")]
    finally:
        pbx.dispose()


def test_an_instance_secret_written_by_another_process_is_read_not_overwritten(tmp_path, monkeypatch):
    """Two processes on a fresh instance folder: the loser reads the winner's secret."""
    from host_stub import config
    path = tmp_path / "secret_key"
    real_read = Path.read_text
    calls = []

    def read_text(self, *args, **kwargs):
        calls.append(self)
        if self == path and len(calls) == 1:
            # The other process publishes its secret between our read and our write.
            path.write_text("the-winners-secret")
            raise FileNotFoundError(path)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert config._instance_secret(path, lambda: "mine") == "the-winners-secret"
    assert path.read_text() == "the-winners-secret"


# -- 9. cheap password hashing where configured -----------------------------------------------

def test_seeded_passwords_use_the_configured_hash_method(app):
    with app.app_context():
        demo = db.session.execute(db.select(Account).filter_by(name="demo")).scalar_one()
        assert demo.password_hash.startswith("pbkdf2:sha256:1000$")
        assert demo.check_password("demo") and not demo.check_password("nope")
        demo.set_password("new")
        assert demo.password_hash.startswith("pbkdf2:sha256:1000$")


def test_hash_method_comes_from_the_environment(monkeypatch, tmp_path):
    from flask import Flask
    from host_stub.config import load_config
    monkeypatch.setenv("CABINET_PASSWORD_HASH_METHOD", "pbkdf2:sha256:2000")
    app = Flask("probe", instance_path=str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("MEGAPLAN_ENCRYPTION_KEY", Fernet.generate_key().decode())
    load_config(app)
    assert app.config["CABINET_PASSWORD_HASH_METHOD"] == "pbkdf2:sha256:2000"
    monkeypatch.delenv("CABINET_PASSWORD_HASH_METHOD")
    load_config(app)
    assert app.config["CABINET_PASSWORD_HASH_METHOD"] is None  # werkzeug's default (scrypt)


def test_an_accounts_pages_stay_in_no_cache_and_https_gets_hsts(configured, client):
    for url in ("/plugins/megaplan/", "/plugins/megaplan/journal/", "/plugins/megaplan/journal/export.csv",
                "/plugins/megaplan/status.json"):
        response = configured.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: it would mean nothing
    secure = configured.get("/plugins/megaplan/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_login_with_a_nul_is_a_wrong_login_not_a_database_error(client, auth):
    for login in ("de\x00mo", "demo\x00"):
        response = auth.login(login, "demo")
        assert response.status_code == 401, login
        assert "Неверный логин или пароль" in response.text
