"""Call sync as production runs it (issues 6, 16): real `rq worker` processes, the sandbox in its own process.

Run: .venv/bin/python bench/sync.py [--window 10] [--outage-seconds 20] [--outage-calls 300]

Everything goes through the cabinet's web app (`flask --app host_stub run`) with `cmd=history`
pushes of the MegaFon PBX, and Megaplan is the sandbox in a process of its own
(`python -m host_stub.megaplan_sandbox`). Two cabinets, one after the other:

* embedded defaults: no REDIS_URL, SQLite; the web process runs the RQ workers as threads
  (two on both queues, one for popups);
* production (README «Production»): PostgreSQL, Redis, `rq worker -w …CabinetWorker
  megaplan-live megaplan` (1, then 4 of them), `rq worker … megaplan-live`, `flask megaplan
  scheduler`, `rq cron megaplan_plugin.delivery.cron_config`.

Every finished call is an outbox row written by its account's one writer (delivery/writer.py):
known clients' calls together in one history request, the others one by one; an account's
writer runs on one worker at a time, so more workers help only across accounts.

(a) calls synced per second with a backlog waiting (sustained rate over a window that starts
    after every worker has finished a job, so app start-up is not counted), each call on its
    own: every call from a number the client index does not know (a search, then its history:
    2 requests), so none can join a batch. Embedded and one production worker: the demo
    account; one and four workers: the same calls spread over --accounts accounts (one
    writer each, so four workers have work for all of them);
(a2) a backlog of --batch-backlog known clients' calls drained by one worker: up to 100 per
    history request (issue 22: <= 0.02 requests per call);
(a3) as (a) over --accounts accounts, with Megaplan answering in --megaplan-ms (50) as over
    the network;
(b) Megaplan requests per call (production), next to the least the API allows;
(c) calls during a sandbox outage (production, 1 sync worker): delivered, duplicated, lost.
Goals: a production worker's rate within 1.25x of the embedded mode's; 4 workers >= 3x one;
(a2) <= 0.02 requests per call; (b) known client 1, unknown client 3, missed call with
callback < 5, repeated push 1, answered with popup 3.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (CpuMeter, Pusher, Stack, code_line, event_fields, history_fields, machine,  # noqa: E402
                    wait_until)
from popup import add_accounts  # noqa: E402

KNOWN_PHONE = "79161234567"  # «Кузнецов Сергей» in the sandbox's seed, responsible 1000002

# The least each scenario can cost with API v3 (argued in README "Benchmarks"), and the most
# the goals allow. Every create first commits its intent (megaplan_intent): a call, client or
# todo with no intent was never sent, so a first attempt looks nothing up.
SCENARIOS = [
    ("known client, answered (history only)", 1, 1,
     "bulk history"),
    ("unknown client, answered, client created", 3, 3,
     "find client, create client, bulk history"),
    ("missed, unknown number, callback (communication on)", 4, 4,
     "find client, create client, history, create todo (its intent: none made before)"),
    ("repeated push (the same history pushed twice)", 1, 1,
     "the second push is the same outbox row: nothing more"),
    ("answered with popup (ring, accept, history)", 3, 3,
     "create, update to talking, update to finished"),
]


def new_id() -> str:
    return uuid.uuid4().hex.upper()


def unknown_phone() -> str:
    return "7999" + str(uuid.uuid4().int)[:7]


DEMO = [("demo", "demo-crm-token", "74950000001")]


def push_calls(pusher: Pusher, n: int, threads: int = 8, unknown: bool = False, accounts=None) -> float:
    """n answered calls through the web app, spread over ``accounts`` (the demo's by default):
    of the known client, or (``unknown``) each from a number nobody knows. Seconds taken."""
    accounts = accounts or DEMO

    def push(i):
        account, token, number = accounts[i % len(accounts)]
        phone = unknown_phone() if unknown else "79161234567"
        pusher.push(account, token, **history_fields(new_id(), phone=phone, diversion=number))
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(push, range(n)))
    return time.perf_counter() - started


def sent(stack: Stack) -> int:
    return stack.outbox_counts().get("sent", 0)


def pending(stack: Stack) -> int:
    return stack.outbox_counts().get("pending", 0)


def sustained_rate(stack: Stack, window: float, floor: int) -> dict:
    """Sent rows per second from now for ``window`` s, or until the backlog is down to ``floor``;
    with where the machine's cores went meanwhile."""
    meter = CpuMeter(stack)
    before = meter.snapshot()
    r1 = stack.sandbox_requests()
    t1, c1 = time.monotonic(), sent(stack)
    while True:
        time.sleep(0.1)
        stack.check()
        t2, counts = time.monotonic(), stack.outbox_counts()
        c2 = counts.get("sent", 0)
        if t2 - t1 >= window or counts.get("pending", 0) <= floor:
            usage = CpuMeter.between(before, meter.snapshot())
            requests = stack.sandbox_requests() - r1
            return {"rate": (c2 - c1) / (t2 - t1), "window": t2 - t1, "calls": c2 - c1, "usage": usage,
                    "backlog_left": counts.get("pending", 0), "per_call": requests / max(1, c2 - c1)}


def drop_backlog(stack: Stack) -> int:
    """End of the rate measurement: the calls still queued are not needed. Empty the sync
    queue and mark their outbox rows skipped (so the sweep does not bring them back), then let
    the jobs that are running finish."""
    from rq import Queue
    conn = stack.redis()
    Queue("megaplan", connection=conn).empty()
    # The emptied queue held the accounts' writers: their wake flags go too, or the next calls
    # would wait for the sweep to notice the flags' jobs are gone.
    flags = list(conn.scan_iter("megaplan:writer:wake:*"))
    if flags:
        conn.delete(*flags)
    with stack.engine().begin() as conn:
        dropped = conn.exec_driver_sql(
            "UPDATE megaplan_outbox SET state = 'skipped', reason = 'bench: backlog dropped' "
            "WHERE kind = 'call' AND state = 'pending'").rowcount
    wait_until(stack.queues_idle, 120, "the running jobs to finish", interval=0.05, check=stack.check)
    return dropped


def wait_drained(stack: Stack, timeout: float = 120) -> None:
    wait_until(lambda: pending(stack) == 0, timeout, "the outbox to drain", interval=0.1, check=stack.check)


def warm(stack: Stack, pusher: Pusher, n: int = 10, accounts=None) -> None:
    """Calls until every worker has finished a job (each builds the cabinet app on its first)."""
    target = sent(stack) + n
    push_calls(pusher, n, accounts=accounts)
    wait_until(lambda: sent(stack) >= target, 120, "warm-up calls to sync", interval=0.05, check=stack.check)
    if stack.mode == "production":
        sync_pids = {w.pid for w in stack.workers if w.argv[-1] == "megaplan"}

        def all_worked():
            done = stack.jobs_done_per_worker()
            if all(done.get(pid, 0) > 0 for pid in sync_pids):
                return True
            push_calls(pusher, 2 * len(sync_pids), threads=2 * len(sync_pids), accounts=accounts)
            return False
        wait_until(all_worked, 120, "every sync worker to finish a job", interval=0.2, check=stack.check)
        wait_drained(stack)


# -- (a) ----------------------------------------------------------------------------------------

# (a) measures what one call costs a worker: every call goes on its own (its number is not in
# the client index: searched, then written), as every call does whose client is new.


def embedded_rate(args) -> dict:
    with Stack("embedded") as stack:
        stack.start_sandbox()
        stack.start_web()
        stack.configure_demo()
        pusher = Pusher(stack.web_url)
        warm(stack, pusher, 20)
        push_calls(pusher, args.backlog, unknown=True)
        return {**sustained_rate(stack, args.window, floor=4), "machine": machine("embedded")}


def production(args) -> dict:
    out = {}
    stack = Stack("production")
    stack.start_sandbox()
    stack.start_web()
    stack.configure_demo()
    # More accounts like demo (popup.py's add_accounts): one writer per account, so four
    # workers need several accounts with calls waiting.
    spread = DEMO + add_accounts(stack, max(1, args.accounts - 1))[:args.accounts - 1]
    stack.start_production_workers(sync_workers=1)
    pusher = Pusher(stack.web_url)
    out["machine"] = machine("production")
    out["accounts"] = len(spread)
    warm(stack, pusher)

    push_calls(pusher, args.backlog, unknown=True)
    out["one"] = sustained_rate(stack, args.window, floor=4)
    drop_backlog(stack)
    push_calls(pusher, args.backlog, unknown=True, accounts=spread)
    out["one_many"] = sustained_rate(stack, args.window, floor=4)
    rate1 = out["one_many"]["rate"]

    # Backlog for four workers over the window (and their start-up) if they reach 3x, then
    # add them; should they do better, the window ends early when the backlog runs out.
    want = int(rate1 * 3 * (args.window + 5)) + 50
    if pending(stack) < want:
        push_calls(pusher, want - pending(stack), unknown=True, accounts=spread)
    before = stack.jobs_done_per_worker()
    for _ in range(3):
        stack.start_worker()
    stack.wait_workers_registered()
    sync_pids = [w.pid for w in stack.workers if w.argv[-1] == "megaplan"]
    wait_until(lambda: all(stack.jobs_done_per_worker().get(pid, 0) > before.get(pid, 0) for pid in sync_pids),
               120, "all four workers to finish a job", interval=0.1, check=stack.check)
    out["four"] = sustained_rate(stack, args.window, floor=16)

    # (a3) Megaplan as it is reached in production, over the network: every answer takes
    # args.megaplan_ms, so a worker mostly waits and more workers help even on two cores.
    stack.sandbox_faults(latency_ms=args.megaplan_ms)
    wanted = int(4 * args.window / (2 * args.megaplan_ms / 1000)) + 100
    if pending(stack) < wanted:
        push_calls(pusher, wanted - pending(stack), unknown=True, accounts=spread)
    out["four_remote"] = sustained_rate(stack, args.window, floor=16)
    for proc in [w for w in stack.workers if w.argv[-1] == "megaplan"][1:]:
        stack.stop_worker(proc)
    if pending(stack) < wanted // 4:
        push_calls(pusher, wanted // 4 - pending(stack), unknown=True, accounts=spread)
    out["one_remote"] = sustained_rate(stack, args.window, floor=4)
    stack.sandbox_faults(latency_ms=0)
    out["dropped"] = drop_backlog(stack)
    stack.close()

    # (a2), (b), (c): a cabinet of its own.
    stack = Stack("production")
    stack.start_sandbox()
    stack.start_web()
    stack.configure_demo()
    stack.start_production_workers(sync_workers=1)
    pusher = Pusher(stack.web_url)
    warm(stack, pusher)
    out["batched"] = batched_backlog(stack, pusher, args.batch_backlog)
    out["requests"] = requests_per_call(stack, pusher)
    if args.outage_seconds > 0:
        out["outage"] = outage(stack, pusher, args.outage_calls, args.outage_seconds)
    stack.close()
    return out


def batched_backlog(stack: Stack, pusher: Pusher, n: int) -> dict:
    """n known clients' calls waiting (their worker was stopped), then one rq worker drains them:
    the writer sends them up to 100 per request."""
    (sync_worker,) = [w for w in stack.workers if w.argv[-1] == "megaplan"]
    stack.stop_worker(sync_worker)
    before_sent, before_requests = sent(stack), stack.sandbox_requests()
    push_calls(pusher, n)
    meter = CpuMeter(stack)
    snapshot = meter.snapshot()
    t0 = time.monotonic()
    stack.start_worker()
    wait_until(lambda: sent(stack) >= before_sent + n, 300, "the backlog to drain", interval=0.05,
               check=stack.check)
    seconds = time.monotonic() - t0
    return {"calls": n, "seconds": seconds, "rate": n / seconds,
            "requests": stack.sandbox_requests() - before_requests,
            "usage": CpuMeter.between(snapshot, meter.snapshot())}


# -- (b) ----------------------------------------------------------------------------------------

def _state_of(stack: Stack, call_id: str) -> str | None:
    return stack.scalar("SELECT state FROM megaplan_outbox WHERE kind = 'call' AND call_id = :c", c=call_id)


def _synced(stack: Stack, call_id: str) -> None:
    wait_until(lambda: _state_of(stack, call_id) in ("sent", "failed", "skipped"), 60,
               f"call {call_id} to sync", interval=0.02, check=stack.check)
    wait_until(stack.queues_idle, 60, "the queues to be idle", interval=0.02, check=stack.check)


def _stamped(stack: Stack, call_id: str, state: str) -> None:
    wait_until(lambda: any(s["providerId"] == call_id and s["state"] == state
                           for s in stack.probe()["stamps"][-50:]),
               60, f"the {state} popup of {call_id}", interval=0.02, check=stack.check)
    wait_until(stack.queues_idle, 60, "the queues to be idle", interval=0.02, check=stack.check)


def requests_per_call(stack: Stack, pusher: Pusher) -> list[tuple]:
    results = []
    off = {"create_client_on_incoming": None, "create_communication": None}

    def known():
        cid = new_id()
        pusher.push(**history_fields(cid))
        _synced(stack, cid)

    def unknown():
        cid = new_id()
        pusher.push(**history_fields(cid, phone=unknown_phone()))
        _synced(stack, cid)

    def missed():
        cid = new_id()
        pusher.push(**history_fields(cid, phone=unknown_phone(), status="missed", user="pbx", duration=0))
        _synced(stack, cid)

    def repeated():
        cid = new_id()
        fields = history_fields(cid)
        pusher.push(**fields)
        pusher.push(**fields)
        _synced(stack, cid)
        # A third copy after the call was sent: nothing may follow (absence has no event to
        # wait for, so give the workers a moment to prove it).
        before = stack.sandbox_requests()
        pusher.push(**fields)
        time.sleep(1.0)
        _synced(stack, cid)
        assert stack.sandbox_requests() == before, "a repeated push reached Megaplan again"

    def popup():
        cid = new_id()
        pusher.push(**event_fields(cid, "INCOMING", ext="101"))
        _stamped(stack, cid, "calling")
        pusher.push(**event_fields(cid, "ACCEPTED", ext="101"))
        _stamped(stack, cid, "talking")
        pusher.push(**history_fields(cid))
        _synced(stack, cid)

    runs = [(off, known),
            ({**off, "create_client_on_incoming": "y"}, unknown),
            ({"create_client_on_incoming": "y", "create_communication": "y", "communication_types": ["missed"]},
             missed),
            (off, repeated),
            (off, popup)]
    for (name, minimum, most, why), (settings, fire) in zip(SCENARIOS, runs):
        stack.save_settings(**settings)
        wait_until(stack.queues_idle, 60, "the queues to be idle", interval=0.02, check=stack.check)
        before = stack.probe(since=1 << 40)
        fire()
        after = stack.probe(since=1 << 40)
        routes = {r: n - before["by_route"].get(r, 0) for r, n in after["by_route"].items()
                  if n != before["by_route"].get(r, 0)}
        results.append((name, after["requests"] - before["requests"], minimum, most, why, routes))
    stack.save_settings(**off)
    return results


# -- (c) ----------------------------------------------------------------------------------------

def outage(stack: Stack, pusher: Pusher, n: int, seconds: float) -> dict:
    known_before = {c.get("providerId") for c in stack.sandbox_state()["calls"]}
    stack.sandbox_faults(outage_seconds=seconds)
    started = time.monotonic()
    ids = [new_id() for _ in range(n)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda cid: pusher.push(**history_fields(cid)), ids))
    placeholders = ",".join(f"'{cid}'" for cid in ids)

    def states():
        with stack.engine().connect() as conn:
            return {state: count for state, count in conn.exec_driver_sql(
                f"SELECT state, count(*) FROM megaplan_outbox WHERE call_id IN ({placeholders}) "
                "GROUP BY state").all()}

    try:
        wait_until(lambda: states().get("sent", 0) == n, seconds + 120, "the outage's calls to be sent",
                   interval=0.5, check=stack.check)
    except TimeoutError:
        pass
    took = time.monotonic() - started
    written = [c.get("providerId") for c in stack.sandbox_state()["calls"]
               if c.get("providerId") not in known_before]
    delivered = len(set(written) & set(ids))
    return {"calls": n, "seconds": seconds, "delivered": delivered,
            "duplicated": len(written) - len(set(written)), "lost": n - delivered,
            "rows": states(), "took": took}


# -- report -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=10, help="seconds each rate is measured over")
    parser.add_argument("--backlog", type=int, default=1500, help="calls waiting before a rate is measured")
    parser.add_argument("--accounts", type=int, default=8,
                        help="(a), (a3): accounts the calls of the 1- and 4-worker rates are spread over")
    parser.add_argument("--megaplan-ms", type=float, default=50,
                        help="(a3): how long each Megaplan answer takes, as over the network")
    parser.add_argument("--batch-backlog", type=int, default=2000,
                        help="known clients' calls waiting before one worker drains them (a2)")
    parser.add_argument("--outage-calls", type=int, default=300)
    parser.add_argument("--outage-seconds", type=float, default=10, help="0 skips (c)")
    args = parser.parse_args()
    started = time.monotonic()
    print("bench/sync.py: finished calls synced to Megaplan (the sandbox in its own process)")
    print("goals: one production worker's calls/s within 1.25x of the embedded mode's; "
          "4 workers >= 3x one worker; a known clients' backlog <= 0.02 requests per call; "
          "requests per call: known 1, unknown 3, missed with callback < 5, repeated push 1, "
          "popup 3; an outage loses and duplicates nothing")
    print(code_line())
    embedded = embedded_rate(args)
    prod = production(args)
    print(embedded["machine"].replace("machine:", "embedded run:  "))
    print(prod["machine"].replace("machine:", "production run:"))
    print()
    e, one, one_many, four = embedded["rate"], prod["one"]["rate"], prod["one_many"]["rate"], prod["four"]["rate"]
    n_acc = prod["accounts"]
    print("(a) calls synced per second (answered, each from a number the index does not know: search + "
          "history, one by one; backlog waiting)")
    print(f"    {'setup':<62}{'calls/s':>9}{'window s':>10}{'calls':>7}{'req/call':>10}")
    for label, f in (("embedded: flask run, SQLite, 2 worker threads, demo (baseline)", embedded),
                     ("production: 1 rq worker process, PostgreSQL + Redis, demo", prod["one"]),
                     (f"production: 1 rq worker process, {n_acc} accounts", prod["one_many"]),
                     (f"production: 4 rq worker processes, {n_acc} accounts", prod["four"])):
        print(f"    {label:<62}{f['rate']:>9.1f}{f['window']:>10.1f}{f['calls']:>7}{f['per_call']:>10.2f}")
    print(f"    embedded / one production worker: {e / one:5.2f}x  (goal <= 1.25)  "
          f"{'met' if e / one <= 1.25 else 'NOT met'}  (one account: one writer at a time in both)")
    print(f"    4 workers / 1 worker ({n_acc} accounts): {four / one_many:5.2f}x  (goal >= 3.00)  "
          f"{'met' if four / one_many >= 3 else 'NOT met'}  (this machine has 2 cores, shared with the "
          f"web app, PostgreSQL, Redis and the sandbox)")
    for label, figures in (("embedded", embedded), ("1 worker", prod["one"]),
                           (f"1 worker, {n_acc} accounts", prod["one_many"]), ("4 workers", prod["four"])):
        if figures["backlog_left"] <= 16:
            print(f"    warning: the {label} window ended with the backlog used up; raise --backlog")
        print(f"    CPU, {label}: " + CpuMeter.describe(figures["usage"], group={"rq workers": "worker-"}))
    # CPU time per call does not depend on what else runs on the machine as much as calls/s do.
    cpu_ms = {label: 1000 * sum(v for k, v in f["usage"]["cores"].items() if k.startswith(prefix))
              * f["usage"]["wall"] / max(1, f["calls"])
              for label, f, prefix in (("embedded", embedded, "web"), ("1 worker", prod["one"], "worker-"),
                                       ("4 workers", prod["four"], "worker-"))}
    print(f"    CPU per synced call: embedded web process (its worker threads) {cpu_ms['embedded']:.1f} ms; "
          f"rq worker processes {cpu_ms['1 worker']:.1f} ms (1 worker), {cpu_ms['4 workers']:.1f} ms "
          f"(4 workers); production / embedded {cpu_ms['1 worker'] / cpu_ms['embedded']:.2f}x")
    for label, f in (("embedded", embedded), ("1 worker", prod["one"]), ("4 workers", prod["four"])):
        ours = 1000 * sum(v for k, v in f["usage"]["cores"].items() if k != "bench") * f["usage"]["wall"] \
            / max(1, f["calls"])
        print(f"    CPU per synced call, {label}, with the sandbox, PostgreSQL and Redis: {ours:.1f} ms = at most "
              f"{1000 * os.cpu_count() / max(ours, 1e-9):.0f} calls/s on {os.cpu_count()} free cores")
    r1, r4 = prod["one_remote"], prod["four_remote"]
    print(f"(a3) the same over {n_acc} accounts, with every Megaplan answer taking {args.megaplan_ms:.0f} ms "
          f"(as over the network):")
    print(f"    1 worker {r1['rate']:.1f} calls/s, 4 workers {r4['rate']:.1f} calls/s: {r4['rate'] / r1['rate']:.2f}x  "
          f"(goal >= 3.00)  {'met' if r4['rate'] / r1['rate'] >= 3 else 'NOT met'}")
    print(f"    CPU, 4 workers: " + CpuMeter.describe(r4["usage"], group={"rq workers": "worker-"}))
    print()
    b = prod["batched"]
    per_call = b['requests'] / b['calls']
    print(f"(a2) {b['calls']} known clients' calls waiting, then one rq worker drains them:")
    print(f"    drained in {b['seconds']:.1f} s = {b['rate']:.1f} calls/s with {b['requests']} Megaplan requests "
          f"({per_call:.3f} per call, goal <= 0.02: {'met' if per_call <= 0.02 else 'NOT met'}); "
          f"{b['rate'] / one:.1f}x the one-by-one rate of one worker in (a)")
    print(f"    CPU: " + CpuMeter.describe(b["usage"], group={"rq workers": "worker-"}))
    print()
    print("(b) Megaplan requests per call (production)           measured  minimum  goal")
    for name, measured, minimum, most, why, routes in prod["requests"]:
        flag = "" if measured == minimum else ("  ABOVE the minimum" if measured > minimum else "  below")
        goal = "met" if measured <= most else "NOT met"
        print(f"    {name:<52}{measured:>6}{minimum:>9}  <= {most} {goal}{flag}")
        print(f"        minimum: {why}; measured: " + ", ".join(f"{r} x{n}" for r, n in sorted(routes.items())))
    if "outage" in prod:
        o = prod["outage"]
        print()
        print(f"(c) {o['calls']} calls pushed during a {o['seconds']:.0f} s sandbox outage (1 sync worker; "
              f"the writer pauses, each call's retry time on its row): delivered {o['delivered']}, duplicated "
              f"{o['duplicated']}, lost {o['lost']}; outbox rows {o['rows']}; all sent {o['took']:.0f} s "
              f"after the outage began")
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
