"""route_request latency (issue 7).

Run: .venv/bin/python bench/route.py [--numbers 10000] [--slow-calls 20]
Warm cache over known numbers vs a bare indexed lookup of the same table in the same run
(goal: within 2x, p99 <= 5 ms), and p99 with Megaplan slower than the host's deadline
(goal: never above CABINET_ROUTE_TIMEOUT_MS).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from host_stub.db import db  # noqa: E402
from host_stub.megaplan_sandbox import serve  # noqa: E402
from host_stub.types import CallEvent  # noqa: E402
from megaplan_plugin.models import KnownClient, Settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import make_app  # noqa: E402


def ms(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000


def event(phone: str) -> CallEvent:
    return CallEvent("demo", uuid.uuid4().hex, "in", phone, "74950000001", None, datetime.now(timezone.utc))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--slow-calls", type=int, default=20)
    args = parser.parse_args()
    with serve() as sandbox:
        app = make_app(sandbox.url)
        host = app.extensions["cabinet"]
        phones = [f"7900{n:07d}" for n in range(args.numbers)]
        with app.app_context():
            settings = db.session.get(Settings, "demo")
            settings.route_to_manager = True
            db.session.commit()
            db.session.execute(insert(KnownClient), [
                {"account_id": "demo", "phone": p, "contractor_type": "ContractorHuman",
                 "contractor_id": str(n), "name": f"Клиент {n}", "responsible_id": "1000002"}
                for n, p in enumerate(phones)])
            db.session.commit()
            for phone in phones:  # warm the cache
                assert host.call_hook("demo", "route_request", event=event(phone)).user_login == "ivanov"
            hook, bare = [], []
            for phone in phones:
                e = event(phone)
                t0 = time.perf_counter()
                host.call_hook("demo", "route_request", event=e)
                hook.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                db.session.execute(select(KnownClient).where(
                    KnownClient.account_id == "demo", KnownClient.phone == phone)).scalar_one()
                bare.append(time.perf_counter() - t0)
            db.session.remove()
        h50, h99 = ms(hook)
        b50, b99 = ms(bare)
        print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}, known numbers: {args.numbers}")
        print(f"{'what':<40}{'p50 ms':>9}{'p99 ms':>9}")
        print(f"{'bare indexed lookup (same table)':<40}{b50:>9.3f}{b99:>9.3f}")
        print(f"{'route_request, warm cache':<40}{h50:>9.3f}{h99:>9.3f}")
        print(f"ratio p99 route/bare: {h99 / b99:.2f} (goal <= 2.00), p99 <= 5 ms: {h99 <= 5}")

        deadline = app.config["CABINET_ROUTE_TIMEOUT_MS"]
        sandbox.state.set_latency(deadline * 2)
        slow = []
        with app.app_context():
            for n in range(args.slow_calls):
                t0 = time.perf_counter()
                answer = host.route("demo", event(f"7911{n:07d}"))
                slow.append(time.perf_counter() - t0)
                assert answer is None
        s50, s99 = ms(slow)
        print(f"{'route with Megaplan at ' + str(deadline * 2) + ' ms (through host)':<40}{s50:>9.1f}{s99:>9.1f}")
        print(f"deadline {deadline} ms; p99 above it: {s99 > deadline}")
        sandbox.state.set_latency(0)


if __name__ == "__main__":
    main()
