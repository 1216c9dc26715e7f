"""Single flight where two would race, tested with real concurrency.

Rounds: ``RACE_ROUNDS`` (default 3; the README's 20-in-a-row runs set it to 20). With
``REDIS_URL`` (CI: PostgreSQL and Redis) the racers are worker processes, as production runs
them; without it (the embedded mode: SQLite and the in-process Redis, which no other process
can reach) they are threads of one process, as the embedded mode runs them.
"""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from host_stub.db import db
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.worker import thread_worker
from megaplan_plugin.models import OutboxEntry

ROUNDS = int(os.environ.get("RACE_ROUNDS", "3"))
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("integration")

REFRESHER = r"""
import json, sys, threading
from host_stub import create_app
from megaplan_plugin.calls.connection import client_for
from megaplan_plugin.models import Credential
app = create_app(json.loads(sys.argv[1]))
threads_n = int(sys.argv[2])
barrier = threading.Barrier(threads_n)
errors = []
def work():
    try:
        with app.app_context():
            client = client_for(app.extensions["cabinet"].db.session.get(Credential, 1))
            client.tokens.load()
            barrier.wait(30)
            client.current_user()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work) for _ in range(threads_n)]
[t.start() for t in threads]
[t.join(60) for t in threads]
print(json.dumps(errors))
sys.exit(1 if errors else 0)
"""


def _child_config(app) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "PBX_DATABASE_URL": app.config["PBX_DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"], "SECRET_KEY": "test-secret", "TESTING": True,
            "MEGAPLAN_EMBEDDED_WORKER": False, "MEGAPLAN_ALLOW_HTTP": True,
            "MEGAPLAN_ENCRYPTION_KEY": app.config["MEGAPLAN_ENCRYPTION_KEY"]}


def _in_threads(n, target):
    errors = []

    def run():
        try:
            target()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [], [e for e in errors if not isinstance(e, threading.BrokenBarrierError)][:3]


def _in_threads_of(targets):
    """Each target in a thread of its own, all at once."""
    functions = iter(targets)
    lock = threading.Lock()

    def next_target():
        with lock:
            return next(functions)
    _in_threads(len(targets), lambda: next_target()())


def test_an_expired_token_is_refreshed_once_by_two_processes_of_eight_threads(app, megaplan_sandbox):
    from megaplan_plugin.calls.connection import client_for
    from megaplan_plugin.models import Credential
    state = megaplan_sandbox.state
    state.set_latency(50)  # a slow token endpoint widens the window for a second refresh
    for _ in range(ROUNDS):
        state.expire_access_tokens()
        before = len(state.grants)
        if app.config["REDIS_URL"]:
            children = [subprocess.Popen(
                [sys.executable, "-c", REFRESHER, json.dumps(_child_config(app)), "8"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
            for child in children:
                out, err = child.communicate(timeout=120)
                assert child.returncode == 0, (out + err).decode()[-3000:]
        else:
            barrier = threading.Barrier(16)

            def work():
                with app.app_context():
                    client = client_for(db.session.get(Credential, 1))
                    client.tokens.load()
                    db.session.remove()  # 16 threads must not need 16 pooled connections
                    barrier.wait(30)
                    client.current_user()
            _in_threads(16, work)
        assert state.grants[before:] == ["refresh_token"]


DRAINER = r"""
import json, sys
from host_stub import create_app
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.worker import thread_worker
app = create_app(json.loads(sys.argv[1]))
thread_worker(app, app.extensions["megaplan"].redis, queues.QUEUES).work(burst=True, logging_level="WARNING")
"""


def _drain_concurrently(app, workers=2):
    """Every queued job run by ``workers`` burst workers at once: processes on real Redis."""
    conn = app.extensions["megaplan"].redis
    if not app.config["REDIS_URL"]:
        _in_threads(workers, lambda: thread_worker(app, conn, queues.QUEUES).work(
            burst=True, logging_level="WARNING"))
        return
    config = json.dumps(_child_config(app))
    children = [subprocess.Popen([sys.executable, "-c", DRAINER, config], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(workers)]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, (out + err).decode()[-3000:]
        assert b"Traceback" not in err, err.decode()[-3000:]


def test_the_legs_of_a_group_call_on_two_workers_open_one_popup(app, pbx, megaplan_sandbox):
    megaplan_sandbox.state.set_latency(20)
    for n in range(ROUNDS):
        call = pbx.new_call(phone=f"7916555{n:04d}")
        call.ring("ivanov", "petrova")  # two popup jobs with different ids, at once
        _drain_concurrently(app)
        opened = [c for c in megaplan_sandbox.state.calls.values() if c["providerId"] == call.call_id]
        assert len(opened) == 1


@pytest.mark.slow
def test_popups_racing_their_history_never_make_two_calls_nor_leave_one_open(app, pbx, megaplan_sandbox):
    total, batch = 200, 50
    megaplan_sandbox.state.set_latency(5)  # requests in flight overlap
    ids = []
    for start in range(0, total, batch):
        for n in range(start, start + batch):
            call = pbx.new_call(phone=f"7916{n:07d}")
            call.ring("ivanov")
            call.answer("ivanov")
            call.history(status="Success", user="ivanov")  # popups and history queued together
            ids.append(call.call_id)
        _drain_concurrently(app, workers=3)
    calls = list(megaplan_sandbox.state.calls.values())
    assert sorted(c["providerId"] for c in calls) == sorted(ids)  # each once
    assert [c for c in calls if c.get("state") != "finished"] == []  # no popup left open
    with app.app_context():
        states = db.session.execute(db.select(OutboxEntry.state).filter_by(kind=OutboxEntry.CALL)).scalars()
        assert set(states) == {"sent"}


def test_four_workers_draining_a_backlog_send_each_call_once_in_batches(app, pbx, megaplan_sandbox):
    megaplan_sandbox.state.set_latency(20)
    ids = []
    for _ in range(200):
        call = pbx.new_call(phone="79161234567")  # a known client: history and nothing more
        call.history(status="Success", user="ivanov")
        ids.append(call.call_id)
    _drain_concurrently(app, workers=4)
    calls = list(megaplan_sandbox.state.calls.values())
    assert sorted(c["providerId"] for c in calls) == sorted(ids)  # each once
    with app.app_context():
        states = db.session.execute(db.select(OutboxEntry.state).filter_by(kind=OutboxEntry.CALL)).scalars()
        assert set(states) == {"sent"}
    # One writer for the account, whichever worker runs it: a hundred calls a request.
    assert megaplan_sandbox.state.request_count("POST", "/api/v3/callInfo/history") <= 4


def test_a_refreshed_token_that_is_dead_too_is_refreshed_again_once(app, megaplan_sandbox):
    """Megaplan expires every token, and then the first refreshed one as well: eight threads
    that all met the first 401 get through, with two refreshes in all (one at a time)."""
    from megaplan_plugin.calls.connection import client_for
    from megaplan_plugin.models import Credential
    state = megaplan_sandbox.state
    state.set_latency(20)
    for _ in range(ROUNDS):
        with app.app_context():
            client_for(db.session.get(Credential, 1)).current_user()  # a live token to start with
            db.session.remove()
        state.expire_access_tokens()
        state.expire_issued_next(1)
        before = len(state.grants)
        barrier = threading.Barrier(8)

        def work():
            with app.app_context():
                client = client_for(db.session.get(Credential, 1))
                db.session.remove()
                barrier.wait(30)
                client.current_user()
        _in_threads(8, work)
        assert state.grants[before:] == ["refresh_token", "refresh_token"]


def test_a_call_back_and_a_new_miss_of_the_number_at_once_close_one_and_open_one(app, megaplan_sandbox,
                                                                                   integration, rq_worker):
    """Issue 26: the call back of an open callback and a new miss of the same number arrive
    together, on two workers: the open one is closed once, the new miss opens one callback
    with one todo of its own."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from host_stub.testing import PbxScript
    from megaplan_plugin.models import Callback
    integration(create_communication="y", communication_types=["missed"], callback_within="30",
                work_start="10:00", work_end="18:00", time_zone="Europe/Moscow")
    state = megaplan_sandbox.state
    state.set_latency(20)
    msk = ZoneInfo("Europe/Moscow")

    def at(day, hour, minute):
        return datetime(2026, 11, day, hour, minute, tzinfo=msk).astimezone(timezone.utc)
    for n in range(ROUNDS):
        phone = f"7916777{n:04d}"
        first = PbxScript(app.test_client()).new_call(phone=phone)
        first.history(status="missed", user="pbx", duration=20, start=at(26, 9, 0))
        rq_worker()  # the number's open callback, before the race
        (todo_id,) = [t["id"] for t in state.todos.values() if phone[-4:] in t["name"].replace("-", "")]
        barrier = threading.Barrier(2)

        def call_back():
            call = PbxScript(app.test_client()).new_call(phone=phone, direction="out")
            barrier.wait(30)
            call.history(status="Success", user="ivanov", duration=60, start=at(26, 10, 10))

        def miss_again():
            call = PbxScript(app.test_client()).new_call(phone=phone)
            barrier.wait(30)
            call.history(status="missed", user="pbx", duration=20, start=at(26, 10, 11))
        _in_threads_of([call_back, miss_again])
        _drain_concurrently(app)
        todos = [t for t in state.todos.values() if phone[-4:] in t["name"].replace("-", "")]
        assert len(todos) == 2  # the first callback's and the new miss's
        closed = state.todos[todo_id]
        assert closed["timeFinished"] and state.request_count("POST", f"/api/v3/todo/{todo_id}/doAction") == 1
        assert [c for c in closed.get("comments", []) if "Перезвонили" in c["content"]] == [closed["resultComment"]]
        (new,) = [t for t in todos if t["id"] != todo_id]
        assert not new.get("timeFinished")
        with app.app_context():
            found = db.session.execute(db.select(Callback).filter_by(client_phone=phone).order_by(Callback.id)).scalars().all()
            assert [(c.outcome, c.misses, c.todo_id) for c in found] == [("in_time", 1, todo_id), (None, 1, new["id"])]
            db.session.remove()
