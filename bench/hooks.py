"""Hook latency: call_started / call_ended through the host, next to the floor of their work.

Run: .venv/bin/python bench/hooks.py [--calls 10000] [--redis redis://127.0.0.1:6379/9]
Uses real Redis (REDIS_URL or --redis) and DATABASE_URL when set, else a SQLite file.
Goals (issues 3 and 22), measured in the same run:
- call_started p99 within 3x of a bare Queue.enqueue p99;
- call_ended p99 within 1.5x of the floor of its own work: one committed insert of the call's
  outbox row plus one bare enqueue. call_ended wakes the account's writer, which enqueues
  nothing while a writer is already waiting: measured both ways, "every hook enqueues" (the
  writer ran between any two calls: the worst case) and "a burst" (the writer is waiting),
  with the share of hooks that enqueued nothing.
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

import sqlalchemy as sa  # noqa: E402
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
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()

    app = fresh_app(REDIS_URL=args.redis)
    database = app.config["SQLALCHEMY_DATABASE_URI"]
    conn = app.extensions["megaplan"].redis
    host = app.extensions["cabinet"]
    user = PbxUser("ivanov", "Иван Иванов", "101")
    from megaplan_plugin.delivery import queues
    from megaplan_plugin.delivery.outbox import as_dict, insert_row, row_values
    with app.app_context():
        _activate(app)
        engine = host.db.engine
        bare_queue = Queue("bench-bare", connection=conn)
        sync_queue = Queue(queues.SYNC_QUEUE, connection=conn)
        bare, floor, started, ended, burst = [], [], [], [], []
        enqueued = {"every": 0, "burst": 0}
        for i in range(args.calls):
            t0 = time.perf_counter()
            bare_queue.enqueue("os.getpid", job_id=f"bare-{i}", result_ttl=0)  # a no-op job
            bare.append(time.perf_counter() - t0)

            call_id = uuid.uuid4().hex
            now = datetime.now(timezone.utc)
            record = CallRecord("demo", call_id, "in", "79161234567", "74950000001", "answered",
                                user, now, 42, 3, (user,), "https://rec.example/1.mp3")
            # The floor: the same row inserted (another call id) and one bare enqueue.
            values = row_values(as_dict(record), call_id="floor-" + call_id)
            t0 = time.perf_counter()
            insert_row(engine, values)
            bare_queue.enqueue("os.getpid", job_id=f"floor-{i}", result_ttl=0)
            floor.append(time.perf_counter() - t0)

            event = CallEvent("demo", call_id, "in", "79161234567", "74950000001", user, now)
            t0 = time.perf_counter()
            host.call_hook("demo", "call_started", event=event)
            started.append(time.perf_counter() - t0)

            conn.delete(queues.wake_key("demo"))  # the writer ran since the last call
            jobs = sync_queue.count
            t0 = time.perf_counter()
            host.call_hook("demo", "call_ended", record=record)
            ended.append(time.perf_counter() - t0)
            enqueued["every"] += sync_queue.count - jobs

            burst_record = CallRecord("demo", "burst-" + call_id, "in", "79161234567", "74950000001",
                                      "answered", user, now, 42, 3, (user,), None)
            jobs = sync_queue.count
            t0 = time.perf_counter()
            host.call_hook("demo", "call_ended", record=burst_record)  # the writer is waiting
            burst.append(time.perf_counter() - t0)
            enqueued["burst"] += sync_queue.count - jobs
        stored = host.db.session.execute(sa.text(
            "SELECT count(*) FROM megaplan_outbox WHERE call_id NOT LIKE 'floor-%'")).scalar()
    # The hooks did their work: every popup queued, every finished call stored.
    live = Queue("megaplan-live", connection=conn).count
    conn.flushdb()
    assert (live, stored) == (args.calls, 2 * args.calls), (live, stored)

    base50, base99 = percentiles(bare)
    floor50, floor99 = percentiles(floor)
    print(f"database: {database.split('://')[0]}, redis: {args.redis}, calls: {args.calls}")
    print(f"{'what':<34}{'p50 ms':>9}{'p99 ms':>9}{'p99 ratio':>11}  enqueued nothing")
    print(f"{'bare Queue.enqueue':<34}{base50:>9.3f}{base99:>9.3f}{1:>11.2f}")
    p50, p99 = percentiles(started)
    print(f"{'call_started hook / bare':<34}{p50:>9.3f}{p99:>9.3f}{p99 / base99:>11.2f}")
    print(f"{'floor: insert + bare enqueue':<34}{floor50:>9.3f}{floor99:>9.3f}{1:>11.2f}")
    for name, samples, kind in (("call_ended, every hook enqueues", ended, "every"),
                                ("call_ended, a burst", burst, "burst")):
        p50, p99 = percentiles(samples)
        nothing = 1 - enqueued[kind] / args.calls
        print(f"{name + ' / floor':<34}{p50:>9.3f}{p99:>9.3f}{p99 / floor99:>11.2f}  {nothing:>6.0%}")
    print("goals: call_started p99 / bare <= 3.00; call_ended p99 / floor <= 1.50")


if __name__ == "__main__":
    main()
