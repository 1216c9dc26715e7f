"""Pytest fixtures for the cabinet and its plugins (loaded with ``-p host_stub.testing``).

The suite runs against whatever services the environment names: ``DATABASE_URL`` (PostgreSQL
in CI) and ``REDIS_URL`` (real Redis in CI); without them, SQLite files and fakeredis.
Under pytest-xdist every worker gets a database and a Redis db of its own (see
``pytest_configure``), so parallel tests never reset each other's services.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from datetime import datetime, timezone

import pytest
import redis as redis_lib
from rq.registry import ScheduledJobRegistry

from . import create_app
from .db import db

DEMO = {"account": "demo", "password": "demo", "crm_token": "demo-crm-token"}
OTHER = {"account": "other", "password": "other", "crm_token": "other-crm-token"}


def pytest_configure(config) -> None:
    """Give an xdist worker its own services: ``<database>_gw1`` and the Redis db below the
    given one. The environment is rewritten, not just a fixture, because many tests start
    processes (workers, a second cabinet) that must find the same services."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    n = int(worker.removeprefix("gw"))
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = _own_database(os.environ["DATABASE_URL"], f"_{worker}")
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = _own_redis_db(os.environ["REDIS_URL"], n)


def _own_database(url: str, suffix: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    base = make_url(_pg(url))
    name = f"{base.database}{suffix}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _own_redis_db(url: str, n: int) -> str:
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    given = int(parts.path.strip("/") or 0)
    own = given - n if given >= n else given + n  # away from db 0, the one people use by hand
    return urlunsplit(parts._replace(path=f"/{own}"))


def _default_plugins():
    import megaplan_plugin.hooks
    return [megaplan_plugin.hooks]


@pytest.fixture
def app_config(tmp_path) -> dict:
    """Override keys in a test module by redefining this fixture or using ``make_app``."""
    return {}


@pytest.fixture
def plugins():
    return _default_plugins()


@pytest.fixture
def make_app(tmp_path, request):
    """Build apps on the test's services; every app is torn down (tables dropped) afterwards."""
    made = []

    def make(config: dict | None = None, plugins=None):
        base = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") and _pg(os.environ["DATABASE_URL"])
            or f"sqlite:///{tmp_path / f'cabinet-{len(made)}.sqlite3'}",
            # One PBX per test, whatever cabinets the test builds (they share the database too).
            "PBX_DATABASE_URL": f"sqlite:///{tmp_path / 'pbx.sqlite3'}",
            "PBX_RECORDINGS_DIR": str(tmp_path / "pbx-recordings"),
            "REDIS_URL": os.environ.get("REDIS_URL") or None,
            "MEGAPLAN_EMBEDDED_WORKER": False,
            "MEGAPLAN_ALLOW_HTTP": True,
            "WTF_CSRF_ENABLED": False,
            "SERVER_NAME": None,
            "CABINET_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
        base.update(config or {})
        if not made:
            _reset_services(base)
        app = create_app(base, plugins=_default_plugins() if plugins is None else plugins)
        made.append(app)
        return app

    yield make
    for app in made:
        runner = getattr(app.extensions.get("megaplan"), "runner", None)
        if runner is not None:
            runner.stop()  # the embedded mode's threads must not outlive their tables
        if app.extensions.get("megaplan") is not None:
            app.extensions["megaplan"].dispose()
        with app.app_context():
            db.session.remove()
            for metadata in app.extensions["cabinet"].plugin_tables:
                metadata.drop_all(db.engine)
            db.drop_all()
            db.engine.dispose()
        app.extensions["cabinet"].pbx.close()


def _pg(url: str) -> str:
    from .config import _database_url
    return _database_url(url, None)


def _reset_services(config: dict) -> None:
    """Leave nothing of a previous test in the shared PostgreSQL and Redis."""
    if config.get("REDIS_URL"):
        redis_lib.Redis.from_url(config["REDIS_URL"]).flushdb()
    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgresql"):
        import sqlalchemy as sa
        engine = sa.create_engine(uri)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
        engine.dispose()


@pytest.fixture
def app(make_app, app_config, plugins):
    return make_app(app_config, plugins)


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    def __init__(self, client):
        self.client = client

    def login(self, account: str = "demo", password: str | None = None):
        password = password if password is not None else {"demo": "demo", "other": "other"}.get(account, "")
        return post_form(self.client, "/login", {"login": account, "password": password})

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def logged_in(client, auth):
    assert auth.login().status_code == 302
    return client


@pytest.fixture
def enable_plugin(app):
    def enable(account: str = "demo", key: str = "megaplan", enabled: bool = True):
        with app.app_context():
            app.extensions["cabinet"].set_plugin_enabled(account, key, enabled)
    return enable


def run_jobs(app, *, scheduled: bool = True, rounds: int = 20, logging_level: str = "WARNING") -> int:
    """Run every queued job with a real RQ worker in burst mode; scheduled retries are made due.

    Returns how many jobs were started. Like production, each job gets its own app context.
    """
    from megaplan_plugin.delivery import queues
    from megaplan_plugin.delivery.worker import thread_worker
    conn = app.extensions["megaplan"].redis
    app.extensions["megaplan"].route_refresher.drain()  # numbers routing handed over
    done = 0
    for _ in range(rounds):
        if scheduled:
            _make_retries_due(app)
            _make_scheduled_due(conn, queues)
        pending = sum(queues.queue(name, conn).count for name in queues.QUEUES)
        if not pending:
            break
        thread_worker(app, conn, queues.QUEUES).work(burst=True, logging_level=logging_level)
        done += pending
    return done


def _make_retries_due(app) -> None:
    """Time passes for the plugin's own schedules too: calls waiting for their next try, and
    leases of requests that never got an answer, are due now."""
    from sqlalchemy import update
    from megaplan_plugin.models import Intent, OutboxEntry, utcnow
    now = utcnow()
    with app.app_context():
        engine = app.extensions["cabinet"].db.engine
        with engine.begin() as conn:
            conn.execute(update(OutboxEntry).where(OutboxEntry.state == OutboxEntry.PENDING,
                                                   OutboxEntry.next_retry_at > now).values(next_retry_at=now))
            conn.execute(update(Intent).where(Intent.busy_until > now).values(busy_until=now))
        # and the sweep has run: every account with waiting calls has its writer woken
        from megaplan_plugin.delivery import outbox, queues
        for account_id in outbox.accounts_to_wake(app.extensions["cabinet"].db.session):
            queues.wake_writer(account_id, app.extensions["megaplan"].redis)
        app.extensions["cabinet"].db.session.remove()


def _make_scheduled_due(conn, queues) -> int:
    moved = 0
    for name in queues.QUEUES:
        q = queues.queue(name, conn)
        registry = ScheduledJobRegistry(queue=q)
        for job_id in registry.get_job_ids():
            job = q.fetch_job(job_id)
            registry.remove(job_id)
            if job is not None:
                q.enqueue_job(job)
                moved += 1
    return moved


@pytest.fixture
def rq_worker(app):
    """``rq_worker()`` drains the plugin's queues with a real burst worker; returns jobs run."""
    return lambda **kw: run_jobs(app, **kw)


class PbxScript:
    """Pushes exactly as the MegaFon PBX sends them (form-encoded) to ``/pbx/<account>/crm``."""

    def __init__(self, client, account: str = "demo", crm_token: str = "demo-crm-token"):
        self.client = client
        self.account = account
        self.crm_token = crm_token

    def push(self, **fields):
        fields.setdefault("crm_token", self.crm_token)
        return self.client.post(f"/pbx/{self.account}/crm", data=fields)

    def new_call(self, phone="79161234567", diversion="74950000001", direction="in"):
        return PbxCall(self, uuid.uuid4().hex.upper(), phone, diversion, direction)


class PbxCall:
    def __init__(self, script: PbxScript, call_id, phone, diversion, direction):
        self.script, self.call_id, self.phone = script, call_id, phone
        self.diversion, self.direction = diversion, direction

    def _push(self, **fields):
        response = self.script.push(callid=self.call_id, phone=self.phone,
                                    diversion=self.diversion or "", **fields)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def contact(self):
        return self._push(cmd="contact")

    def ring(self, *users):
        kind = "INCOMING" if self.direction == "in" else "OUTGOING"
        for user in users:
            self._push(cmd="event", type=kind, user=user, direction=self.direction)
        return self

    def answer(self, user):
        self._push(cmd="event", type="ACCEPTED", user=user, direction=self.direction)
        return self

    def cancel(self, user):
        self._push(cmd="event", type="CANCELLED", user=user, direction=self.direction)
        return self

    def rate(self, score):
        """The customer's post-call score (``cmd=rating``)."""
        return self._push(cmd="rating", rating=str(score))

    def history(self, status="Success", user="ivanov", duration=42, start=None, link=None, **extra):
        start = start or datetime.now(timezone.utc)
        fields = dict(cmd="history", type=self.direction, status=status, user=user,
                      start=start.strftime("%Y%m%dT%H%M%SZ"), duration=str(duration), **extra)
        if link:
            fields["link"] = link
        return self._push(**fields)


@pytest.fixture
def pbx(client):
    return PbxScript(client)


def post_form(client, url: str, data: dict, page: str | None = None):
    """POST a form the way a browser does: with the CSRF token of the page it came from."""
    html = client.get(page or url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    if match:
        data = {**data, "csrf_token": match.group(1)}
    return client.post(url, data=data)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def live_server(app):
    """``app`` served over real HTTP on 127.0.0.1 (threaded) for the test; yields its base URL."""
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def browser_login(page, url: str, account: str = "demo", password: str = "demo") -> None:
    """Log in to the cabinet in a browser page, as a person does."""
    page.goto(url + "/login")
    page.get_by_label("Логин").fill(account)
    page.get_by_label("Пароль").fill(password)
    page.get_by_role("button", name="Войти").click()


def browser_add_sandbox_credentials(page, url: str, sandbox) -> None:
    """«Подключить» the plugin and add the sandbox's credentials, in a browser page."""
    page.goto(url + "/plugins/")
    page.locator("[data-plugin=megaplan]").get_by_role("button", name="Подключить").click()
    page.goto(url + "/plugins/megaplan/credentials/new")
    page.get_by_label("Название").fill("Песочница")
    page.get_by_label("Логин", exact=True).fill(SANDBOX_LOGIN)
    page.get_by_label("Пароль", exact=True).fill(SANDBOX_PASSWORD)
    page.get_by_label("Домен").fill(sandbox.url)
    page.get_by_role("button", name="Добавить").click()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="Debian's chromium is missing (./dev test installs it)")


@pytest.fixture
def browser_page():
    """A page of headless Debian chromium through Playwright (no browser download here)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
        yield context.new_page()
        browser.close()


@pytest.fixture
def megaplan_sandbox():
    """A Megaplan sandbox served over real HTTP on 127.0.0.1 for the test."""
    from .megaplan_sandbox import serve
    with serve() as server:
        yield server
        # Megaplan's schema is the judge of every request a test made the plugin send: a test
        # that sends a forbidden one on purpose clears what it expected.
        assert server.state.schema_violations == [], server.state.schema_violations[:5]


SANDBOX_LOGIN = "admin@sandbox.megaplan.ru"
SANDBOX_PASSWORD = "sandbox-secret-42"


@pytest.fixture
def configured(app, logged_in, enable_plugin, megaplan_sandbox):
    """The demo account with the plugin on and credentials of the sandbox added."""
    enable_plugin()
    response = post_form(logged_in, "/plugins/megaplan/credentials/new", {
        "title": "Песочница", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD,
        "domain": megaplan_sandbox.url})
    assert response.status_code == 302, response.get_data(as_text=True)
    return logged_in


BASE_SETTINGS = {"credential_id": "1", "active": "y", "default_responsible_id": "1000003",
                 "communication_types": ["in", "out", "missed"], "work_days": ["0", "1", "2", "3", "4"]}


@pytest.fixture
def integration(app, configured):
    """``integration(**options)`` saves the settings page with the integration active.

    Options are form fields, e.g. ``create_communication="y"``; ``None`` leaves one out.
    """
    def configure(**options):
        data = {**BASE_SETTINGS, **options}
        data = {k: v for k, v in data.items() if v is not None}
        response = post_form(configured, "/plugins/megaplan/", data)
        assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
        return configured
    configure()
    run_jobs(app)  # activation's background work (the client index) is done before the test
    return configure
