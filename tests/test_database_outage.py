"""A database outage loses no call: the hook hands the record to Redis, the push gets 503.

The outage is real: the app reaches PostgreSQL through a TCP proxy that the test cuts
(open connections reset, new ones refused) and restores.
"""
import os
import socket
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest

from host_stub.db import db
from host_stub.types import CallRecord, PbxUser
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.skipif(not (os.environ.get("DATABASE_URL") or "").startswith("postgres"),
                                reason="needs PostgreSQL (DATABASE_URL): SQLite has no server to lose")


class TcpProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()  # the server is gone: refused, as fast as a dead host
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def restore(self):
        self.up = True


@pytest.fixture
def proxy():
    url = urlsplit(os.environ["DATABASE_URL"])
    return TcpProxy((url.hostname or "127.0.0.1", url.port or 5432))


@pytest.fixture
def app_config(proxy):
    url = urlsplit(os.environ["DATABASE_URL"])
    netloc = f"{url.username or 'postgres'}@127.0.0.1:{proxy.port}"
    return {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://{netloc}{url.path}",
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 300, "connect_args": {"connect_timeout": 2}}}


def _record(n: int) -> CallRecord:
    return CallRecord(account_id="demo", call_id=uuid.uuid4().hex.upper(), direction="in",
                      client_phone=f"7916888{n:04d}", virtual_number="74950000001", status="answered",
                      user=PbxUser("ivanov", "Иван Иванов", "101"),
                      started_at=datetime.now(timezone.utc), duration_seconds=30, wait_seconds=5)


def test_calls_ended_while_postgresql_is_down_all_reach_megaplan_once_it_is_back(
        app, integration, proxy, rq_worker, megaplan_sandbox):
    host = app.extensions["cabinet"]
    with app.test_request_context():
        host.enabled_plugins("demo")  # the host's own 5 s cache: its part is not under test
    app.extensions["megaplan"].hook_settings.forget("demo")  # the plugin must read, and fail
    proxy.cut()
    records = [_record(n) for n in range(20)]
    with app.test_request_context():
        for record in records:
            host.call_hook("demo", "call_ended", record=record)
            db.session.rollback()  # as the request teardown would
    rq_worker(scheduled=False)  # the jobs carrying the records fail while it is down
    proxy.restore()
    rq_worker()
    with app.app_context():
        rows = db.session.execute(db.select(OutboxEntry).filter_by(kind=OutboxEntry.CALL)).scalars().all()
    assert sorted(r.call_id for r in rows) == sorted(r.call_id for r in records)
    assert {r.state for r in rows} == {"sent"}
    assert sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values()) == \
        sorted(r.call_id for r in records)


def _cabinet_must_ask_its_database(app) -> None:
    """The host serves each account's enabled plugins from memory for 5 s; with that
    gone, a push needs the cabinet's database (the PBX's side still has its own store)."""
    app.extensions["cabinet"]._enabled.clear()


def test_the_push_endpoint_answers_503_not_500_while_the_database_is_down(app, pbx, integration, proxy):
    proxy.cut()
    _cabinet_must_ask_its_database(app)
    response = pbx.push(cmd="history", type="in", status="Success", phone="79161234567",
                        user="ivanov", callid="X-1", start="20261126T100000Z", duration="5")
    assert response.status_code == 503 and response.get_json() == {
        "error": "Service temporarily unavailable"}
    proxy.restore()
    assert pbx.new_call().history(status="Success", user="ivanov") == {}


def test_history_pushed_while_postgresql_is_down_is_recovered_by_reconciliation_once(
        app, integration, proxy, rq_worker, megaplan_sandbox, live_server):
    """The PBX keeps its history in a store of its own: pushes the cabinet refused with 503
    during the cut are still in ``host.pbx.history``, and reconciliation delivers every call
    of the window once, whether its push got through before the cut, during it or after."""
    import requests
    since = datetime.now(timezone.utc)

    def push(call_id: str) -> int:
        return requests.post(f"{live_server}/pbx/demo/crm", timeout=30, data={
            "crm_token": "demo-crm-token", "cmd": "history", "type": "in", "status": "Success",
            "phone": f"7916777{len(pushed):04d}", "diversion": "74950000001", "user": "ivanov",
            "callid": call_id, "start": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
            "duration": "30"}).status_code

    pushed, answers = [], {}
    for phase, n in (("before", 5), ("during", 20), ("after", 5)):
        if phase == "during":
            proxy.cut()
            _cabinet_must_ask_its_database(app)
        elif phase == "after":
            proxy.restore()
        for _ in range(n):
            call_id = uuid.uuid4().hex.upper()
            answers.setdefault(phase, []).append(push(call_id))
            pushed.append(call_id)
    assert answers["before"] == answers["after"] == [200] * 5
    assert set(answers["during"]) == {503}  # the cabinet could not take them

    result = app.test_cli_runner().invoke(args=["megaplan", "reconcile", "--since", since.isoformat()])
    assert result.exit_code == 0, result.output
    assert '"demo": 20' in result.output  # exactly the refused ones were missing
    rq_worker()
    delivered = sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values())
    assert delivered == sorted(pushed)  # every call once: none lost, none twice


def test_a_rating_given_while_postgresql_is_down_reaches_the_communication_once_it_is_back(
        app, pbx, integration, proxy, rq_worker, megaplan_sandbox):
    integration(create_communication="y")
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    host = app.extensions["cabinet"]
    from host_stub.types import CallRating
    proxy.cut()
    with app.test_request_context():
        host.call_hook("demo", "call_rated", rating=CallRating("demo", call.call_id, 5))
        db.session.rollback()
    rq_worker(scheduled=False)  # the job carrying the score fails while it is down
    proxy.restore()
    rq_worker()
    comments = [c["content"] for c in megaplan_sandbox.state.todos[todo["id"]].get("comments", [])]
    assert comments == ["Оценка клиента: 5 из 5"]
