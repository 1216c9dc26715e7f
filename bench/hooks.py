"""Hook latency: call_started / call_ended through the host, next to a bare RQ enqueue.

Run: .venv/bin/python bench/hooks.py [--calls 10000] [--redis redis://127.0.0.1:6379/14]
Uses real Redis (REDIS_URL or --redis) and DATABASE_URL when set, else a SQLite file.
Goal (issue 3): hook p99 within 3x of a bare Queue.enqueue p99 measured in the same run.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rq import Queue  # noqa: E402

from _app import fresh_app  # noqa: E402
from host_stub.types import CallEvent, CallRecord, PbxUser  # noqa: E402


def _activate(app) -> None:
    """An active integration: otherwise the hooks return before doing anything."""
    from megaplan_plugin.crypto import encrypt
    from megaplan_plugin.models import Credential, Settings
    db = app.extensions["cabinet"].db
    credential = Credential(account_id="demo", title="bench", login="bench@example.ru",
                            base_url="https://bench.megaplan.ru", password_enc=encrypt("x"))
    db.session.add(credential)
    db.session.flush()
    db.session.merge(Settings(account_id="demo", credential_id=credential.id, active=True,
                              api_key=uuid.uuid4().hex, virtual_numbers=[], communication_types=[]))
    db.session.commit()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()

    app = fresh_app(REDIS_URL=args.redis)
    database = app.config["SQLALCHEMY_DATABASE_URI"]
    conn = app.extensions["megaplan"].redis
    host = app.extensions["cabinet"]
    user = PbxUser("ivanov", "Иван Иванов", "101")
    with app.app_context():
        _activate(app)
        bare_queue = Queue("bench-bare", connection=conn)
        bare, started, ended = [], [], []
        for i in range(args.calls):
            t0 = time.perf_counter()
            bare_queue.enqueue("os.getpid", job_id=f"bare-{i}", result_ttl=0)  # a no-op job
            bare.append(time.perf_counter() - t0)

            call_id = uuid.uuid4().hex
            now = datetime.now(timezone.utc)
            event = CallEvent("demo", call_id, "in", "79161234567", "74950000001", user, now)
            t0 = time.perf_counter()
            host.call_hook("demo", "call_started", event=event)
            started.append(time.perf_counter() - t0)

            record = CallRecord("demo", call_id, "in", "79161234567", "74950000001", "answered",
                                user, now, 42, 3, (user,), "https://rec.example/1.mp3")
            t0 = time.perf_counter()
            host.call_hook("demo", "call_ended", record=record)
            ended.append(time.perf_counter() - t0)
    # The hooks did their work: every popup queued, every finished call a job (one account's
    # jobs beyond its fair share wait aside, as RQ's rate limit keeps them, not in the queue).
    live = Queue("megaplan-live", connection=conn).count
    call_jobs = sum(1 for _ in conn.scan_iter("rq:job:megaplan-call-*"))
    conn.flushdb()
    assert (live, call_jobs) == (args.calls, args.calls), (live, call_jobs)

    base50, base99 = percentiles(bare)
    print(f"database: {database.split('://')[0]}, redis: {args.redis}, calls: {args.calls}")
    print(f"{'what':<28}{'p50 ms':>10}{'p99 ms':>10}{'p99 / bare':>12}")
    print(f"{'bare Queue.enqueue':<28}{base50:>10.3f}{base99:>10.3f}{1:>12.2f}")
    for name, samples in (("call_started hook", started), ("call_ended hook", ended)):
        p50, p99 = percentiles(samples)
        print(f"{name:<28}{p50:>10.3f}{p99:>10.3f}{p99 / base99:>12.2f}")
    print("goal: p99 / bare <= 3.00")


if __name__ == "__main__":
    main()
