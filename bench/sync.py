"""Call sync figures against the Megaplan sandbox (issue 6).

Run: .venv/bin/python bench/sync.py [--calls 300] [--outage-calls 1000] [--outage-seconds 60]
(a) finished calls per second one worker syncs, next to the client's raw request rate;
(b) Megaplan requests per call per scenario, next to the minimum the API allows;
(c) calls during a sandbox outage: delivered, duplicated, lost.
Uses fakeredis and SQLite unless REDIS_URL / DATABASE_URL are set.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _app import fresh_app  # noqa: E402
from host_stub.db import db  # noqa: E402
from host_stub.megaplan_sandbox import serve  # noqa: E402
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD, run_jobs  # noqa: E402
from host_stub.types import CallRecord, PbxUser  # noqa: E402
from megaplan_plugin import account_settings  # noqa: E402
from megaplan_plugin.megaplan import MegaplanClient  # noqa: E402
from megaplan_plugin.models import CallLog, Settings  # noqa: E402

IVANOV = PbxUser("ivanov", "Иван Иванов", "101")

# The least each scenario can cost with API v3 (argued in README "Benchmarks"):
MINIMUM = {
    "answered, known client, live events lost": 3,         # find client, find call, bulk history
    "missed, unknown number, client + communication": 6,   # + create client, list todos, create todo
    "answered with popup (calling, talking, finished)": 7,  # 2 lookups, create, update; history as above
}


def make_app(sandbox_url: str):
    app = fresh_app()
    with app.app_context():
        result = account_settings.check_and_store_credential(
            "demo", title="bench", login=SANDBOX_LOGIN, password=SANDBOX_PASSWORD, domain=sandbox_url)
        settings = account_settings.settings_for("demo")
        settings.credential_id, settings.active = result.credential.id, True
        settings.default_responsible_id = "1000003"
        db.session.commit()
    return app


def configure(app, **options):
    with app.app_context():
        settings = db.session.get(Settings, "demo")
        for key, value in options.items():
            setattr(settings, key, value)
        db.session.commit()
        app.extensions["megaplan"].hook_settings.forget("demo")


def end_call(app, phone="79161234567", status="answered", user=IVANOV):
    record = CallRecord("demo", uuid.uuid4().hex, "in", phone, "74950000001", status, user,
                        datetime.now(timezone.utc), 42, 3, (IVANOV,), "https://rec.example/x.mp3")
    host = app.extensions["cabinet"]
    with app.app_context():
        host.call_hook("demo", "call_ended", record=record)
    return record


def throughput(app, sandbox, n: int) -> None:
    for _ in range(n):
        end_call(app)
    started = time.perf_counter()
    with app.app_context():
        run_jobs(app)
    elapsed = time.perf_counter() - started
    client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD)
    client.current_user()
    raw_started = time.perf_counter()
    for _ in range(n):
        client.current_user()
    raw_elapsed = time.perf_counter() - raw_started
    calls_per_s, requests_per_s = n / elapsed, n / raw_elapsed
    print(f"(a) calls synced per second (1 worker): {calls_per_s:8.1f}")
    print(f"    client requests per second (same run): {requests_per_s:8.1f}")
    print(f"    requests' worth of time per call: {requests_per_s / calls_per_s:5.2f}")


def requests_per_call(app, sandbox) -> None:
    print("(b) Megaplan requests per call          measured  minimum")
    scenarios = [
        ("answered, known client, live events lost", {}, lambda: end_call(app)),
        ("missed, unknown number, client + communication",
         {"create_client_on_incoming": True, "create_communication": True, "communication_types": ["missed"]},
         lambda: end_call(app, phone="7999" + str(uuid.uuid4().int)[:7], status="missed", user=None)),
        ("answered with popup (calling, talking, finished)", {}, lambda: popup_call(app)),
    ]
    for name, options, fire in scenarios:
        configure(app, **{"create_client_on_incoming": False, "create_communication": False, **options})
        with app.app_context():
            run_jobs(app)
        before = sandbox.state.request_count()
        fire()
        with app.app_context():
            run_jobs(app)
        print(f"    {name:<48}{sandbox.state.request_count() - before:>4}{MINIMUM[name]:>9}")


def popup_call(app):
    from host_stub.types import CallEvent
    host = app.extensions["cabinet"]
    call_id = uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    event = CallEvent("demo", call_id, "in", "79161234567", "74950000001", IVANOV, now)
    with app.app_context():
        host.call_hook("demo", "call_started", event=event)
        host.call_hook("demo", "call_answered", event=event)
        run_jobs(app)
        record = CallRecord("demo", call_id, "in", "79161234567", "74950000001", "answered", IVANOV,
                            now, 42, 3, (IVANOV,), None)
        host.call_hook("demo", "call_ended", record=record)


def outage(app, sandbox, n: int, seconds: float) -> None:
    configure(app, create_client_on_incoming=False, create_communication=False)
    with app.app_context():
        run_jobs(app)
    before = {c.get("providerId") for c in sandbox.state.calls.values()}
    sandbox.state.outage(seconds)
    started = time.monotonic()
    ids = [end_call(app).call_id for _ in range(n)]
    with app.app_context():
        run_jobs(app, scheduled=False)  # first attempts meet the outage
        while time.monotonic() - started < seconds:
            time.sleep(min(1.0, seconds))
        run_jobs(app, rounds=50)         # retries after the outage
        states = {}
        for state, in db.session.execute(db.select(CallLog.state).where(CallLog.call_id.in_(ids))):
            states[state] = states.get(state, 0) + 1
    written = [c.get("providerId") for c in sandbox.state.calls.values() if c.get("providerId") not in before]
    delivered = len(set(written) & set(ids))
    print(f"(c) {n} calls during a {seconds:.0f} s outage: delivered {delivered}, "
          f"duplicated {len(written) - len(set(written))}, lost {n - delivered}; rows {states}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--outage-calls", type=int, default=1000)
    parser.add_argument("--outage-seconds", type=float, default=60)
    args = parser.parse_args()
    with serve() as sandbox:
        app = make_app(sandbox.url)
        throughput(app, sandbox, args.calls)
        requests_per_call(app, sandbox)
        outage(app, sandbox, args.outage_calls, args.outage_seconds)


if __name__ == "__main__":
    main()
