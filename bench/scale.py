"""A thousand accounts on one cabinet, production processes (issue 16, «Fair to many accounts»).

Run: .venv/bin/python bench/scale.py [--accounts 1000] [--backlog 10000] [--others 150]
                                     [--rows 100000] [--few-accounts 5] [--rss-calls 5000]
                                     [--hook-samples 3000]

The README's production processes (PostgreSQL, Redis, `flask --app host_stub run`, two
`rq worker`s on both queues, one on popups, `rq cron`) with the Megaplan sandbox in its own
process; --accounts accounts configured like demo (popup.py's add_accounts). Measured:

(a) hook latency (`call_ended` through the host, in this process) for calls of one account
    and for calls spread over every account, interleaved; goal: flat (p99 within 1.25x);
(b) routing with 64 calls at once from unknown numbers while Megaplan answers in 5 s, through
    the host and over HTTP (`cmd=contact`); goal: none past CABINET_ROUTE_TIMEOUT_MS;
(c) the delay from a `history` push to «отправлен» for calls of other accounts while one
    account drains a --backlog backlog, next to the same without it, with the README's two
    sync workers and nothing per account to set: each account has one writer, which drains a
    slice (writer.SLICE_CALLS calls / SLICE_SECONDS s) and queues itself at the back, so the
    other accounts' writers take turns with it; goal (issue 22): p99 within 1.5x;
(d) worker RSS after 1,000 and after --rss-calls synced calls (the backlog); goal: no growth
    after warm-up (within 1.1x);
(e) the sweep (`outbox.sweep`, what cron and `flask megaplan resend` run) over --rows waiting
    calls spread over --few-accounts accounts, then over --accounts accounts: it wakes one
    writer per account with waiting calls (a loose index scan, per account, not per row);
    timed with no writer queued (every account's writer is queued by it) and again right
    after (every writer already waiting); goal < 2 s, one writer queued per account;
(f) the journal page of an account with --rows calls, next to one with 100; goal: within 2x;
(g) the missed-calls report page (issue 26) of an account with --missed missed calls (each its
    own callback, outcomes mixed, one employee rung each), next to one with 100; placed within
    the report's 30 days (the worst case: every figure reads them all) and spread over 1,000
    days; goal: p50 within 2x. `--only report` measures (g) alone (no workers, a minute).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (CpuMeter, Pusher, Stack, code_line, history_fields, machine,  # noqa: E402
                    percentiles, wait_until)
from popup import add_accounts  # noqa: E402

ROUTE_CONCURRENCY = 64


def new_id() -> str:
    return uuid.uuid4().hex.upper()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- (a) hooks --------------------------------------------------------------------------------

def hooks(stack: Stack, accounts, samples: int) -> dict:
    """call_ended of one account vs of all accounts, interleaved; no worker runs meanwhile.

    Measured twice: the plugin's hookimpl called as the host calls it (the goal: the plugin's
    own cost), and through the stub host's dispatch, whose per-account list of enabled plugins
    is cached for 5 s only (a cabinet's own cost, shown for what it adds)."""
    from host_stub.types import CallRecord, PbxUser
    from megaplan_plugin import hooks as plugin_hooks
    app = stack.app()
    host = app.extensions["cabinet"]
    user = PbxUser("ivanov", "ivanov", "101")
    rng = random.Random(3)

    def record(account: str, number: str):
        return CallRecord(account, new_id(), "in", "79161234567", number, "answered", user,
                          datetime.now(timezone.utc), 42, 3, (user,), None)

    def via_host(account: str, number: str) -> float:
        r = record(account, number)
        t0 = time.perf_counter()
        host.call_hook(account, "call_ended", record=r)
        return (time.perf_counter() - t0) * 1000

    def plugin(account: str, number: str) -> float:
        r = record(account, number)
        t0 = time.perf_counter()
        plugin_hooks.call_ended(host=host, record=r)
        return (time.perf_counter() - t0) * 1000

    series = {k: [] for k in ("one", "many", "host_one", "host_many")}
    with app.app_context():
        for account, _, number in accounts:  # every account once: caches as in a running cabinet
            via_host(account, number)
        for _ in range(samples):
            account, _, number = accounts[0]
            series["one"].append(plugin(account, number))
            series["host_one"].append(via_host(account, number))
            account, _, number = rng.choice(accounts)
            series["many"].append(plugin(account, number))
            account, _, number = rng.choice(accounts)
            series["host_many"].append(via_host(account, number))
    return {k: percentiles(v) for k, v in series.items()}


# -- (b) routing --------------------------------------------------------------------------------

def routing(stack: Stack, accounts, rounds: int = 5) -> dict:
    """64 calls at once from numbers nobody knows, with every Megaplan request taking 5 s."""
    import sqlalchemy as sa
    with stack.engine().begin() as conn:
        conn.execute(sa.text("UPDATE megaplan_settings SET route_to_manager = true"))
    app = stack.app()
    host = app.extensions["cabinet"]
    for account, _, _ in accounts:
        app.extensions["megaplan"].hook_settings.forget(account)
    stack.sandbox_faults(latency_ms=5000)
    deadline = int(stack.env.get("CABINET_ROUTE_TIMEOUT_MS", "1000"))
    pusher = Pusher(stack.web_url)
    from host_stub.types import CallEvent
    rng = random.Random(5)
    results = {"host.route": [], "HTTP contact": []}
    time.sleep(2)  # every process looks at the settings generation (bumped by forget) each second

    def ask_host(item):
        account, _, number, phone = item
        event = CallEvent(account, new_id(), "in", phone, number, None, datetime.now(timezone.utc))
        t0 = time.perf_counter()
        with app.app_context():
            host.route(account, event)
        return (time.perf_counter() - t0) * 1000

    def ask_http(item):
        account, token, number, phone = item
        t0 = time.perf_counter()
        pusher.push(account, token, cmd="contact", phone=phone, diversion=number, callid=new_id())
        return (time.perf_counter() - t0) * 1000

    with ThreadPoolExecutor(ROUTE_CONCURRENCY) as pool:
        for _ in range(rounds):
            for name, ask in (("host.route", ask_host), ("HTTP contact", ask_http)):
                items = [(*rng.choice(accounts), "7911" + str(uuid.uuid4().int)[:7])
                         for _ in range(ROUTE_CONCURRENCY)]
                results[name] += list(pool.map(ask, items))
    stack.sandbox_faults(latency_ms=0)
    return {name: {**percentiles(s), "late": sum(1 for x in s if x > deadline), "deadline": deadline}
            for name, s in results.items()}


# -- (c), (d) fairness and memory ---------------------------------------------------------------

def others_delay(stack: Stack, accounts, n: int, rate: float = 5.0) -> list[float]:
    """n answered calls of accounts other than the first, --rate a second; seconds from each
    push to its row's «отправлен»."""
    import sqlalchemy as sa
    pusher = Pusher(stack.web_url)
    rng = random.Random(11)
    pushed: dict[str, float] = {}
    others = accounts[1:]
    begin = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for i in range(n):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            account, token, number = rng.choice(others)
            call_id = new_id()
            pushed[call_id] = time.time()
            pool.submit(pusher.push, account, token, **history_fields(call_id, diversion=number))
    done: dict[str, float] = {}

    def arrived():
        with stack.engine().connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT call_id, updated_at FROM megaplan_outbox WHERE state = 'sent' AND call_id = ANY(:ids)"),
                {"ids": [c for c in pushed if c not in done]}).all()
        for call_id, updated in rows:
            done[call_id] = updated.timestamp() - pushed[call_id]
        return len(done) == len(pushed)

    try:
        wait_until(arrived, 300, f"{n} calls of other accounts", interval=0.2, check=stack.check)
    except TimeoutError:
        pass
    return [done.get(c, float("inf")) for c in pushed]


def add_backlog(stack: Stack, account: str, number: str, n: int, prefix: str = "BACKLOG",
                queue: bool = True, state: str = "pending") -> None:
    """n finished calls of one account waiting in the outbox and its writer woken (``queue``),
    as after a day of its Megaplan being down."""
    import sqlalchemy as sa
    app = stack.app()
    from megaplan_plugin.delivery import queues
    from megaplan_plugin.delivery.outbox import row_values
    from megaplan_plugin.models import OutboxEntry
    from host_stub.types import CallRecord, PbxUser
    from megaplan_plugin.delivery.outbox import as_dict
    user = PbxUser("ivanov", "ivanov", "101")
    start = datetime.now(timezone.utc) - timedelta(hours=8)
    rows = [row_values(as_dict(CallRecord(account, f"{prefix}{i:06d}", "in", "79161234567", number, "answered",
                                          user, start + timedelta(seconds=i), 42, 3, (user,))), state=state)
            for i in range(n)]
    with stack.engine().begin() as conn:
        conn.execute(sa.insert(OutboxEntry.__table__), rows)
    if not queue:
        return
    with app.app_context():
        queues.wake_writer(account)


def backlog_sent(stack: Stack) -> int:
    return stack.scalar("SELECT count(*) FROM megaplan_outbox WHERE state = 'sent' AND call_id LIKE 'BACKLOG%'")


# -- (e) sweeper, (f) journal ---------------------------------------------------------------------

def sweeper(stack: Stack, rows: int, accounts: list[str], prefix: str) -> dict:
    """rows waiting calls spread evenly over ``accounts``, no writer queued: how long the sweep
    takes that wakes them all, and the same sweep again with every writer already waiting.
    The rows are marked sent afterwards (the next case is measured on its own rows)."""
    import sqlalchemy as sa
    from rq import Queue
    from megaplan_plugin.delivery.outbox import sweep
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with stack.engine().begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO megaplan_outbox (kind, source, account_id, call_id, direction, client_phone, status, "
            "started_at, record, state, attempts, created_at, updated_at) "
            "SELECT 'call', 'push', (CAST(:accounts AS text[]))[1 + n % :k], :prefix || n, 'in', '79161234567', 'answered', "
            ":start + n * interval '10 seconds', '{}', 'pending', 0, :start, :start "
            "FROM generate_series(1, :rows) AS n"),
            {"start": start, "rows": rows, "accounts": accounts, "k": len(accounts), "prefix": prefix})
    with stack.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE megaplan_outbox"))  # what autovacuum does soon after
    redis = stack.redis()
    redis.flushdb()  # no writer queued: the sweep queues every one
    queue = Queue("megaplan", connection=redis)
    app = stack.app()
    out = {"rows": rows, "accounts": len(accounts)}
    with app.app_context():
        db = app.extensions["cabinet"].db
        for run in ("first", "again"):
            before = queue.count
            t0 = time.perf_counter()
            counts = sweep(db)
            out[run] = time.perf_counter() - t0
            out[run + "_queued"] = queue.count - before
            out[run + "_accounts"] = counts["accounts"]
        db.session.remove()
    with stack.engine().begin() as conn:
        conn.execute(sa.text("UPDATE megaplan_outbox SET state = 'sent' WHERE call_id LIKE :p"),
                     {"p": prefix + "%"})
    redis.flushdb()
    return out


def journal_page(stack: Stack, session, account_query: str = "", samples: int = 20) -> dict:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        response = session.get(stack.web_url + "/plugins/megaplan/journal/" + account_query)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    return percentiles(times)


def count_tallies(conn, params: dict) -> None:
    """The hourly counts (calls/callback_tallies.py) of the bench's callbacks of ``prefix``, as
    the writer keeps them for callbacks it writes."""
    import sqlalchemy as sa
    conn.execute(sa.text(
        "INSERT INTO megaplan_callback_tally (account_id, hour, figure, detail, n) "
        "SELECT account_id, hour, figure, detail, count(*) FROM ("
        "  SELECT account_id, date_trunc('hour', opened_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, "
        "         unnest(ARRAY['callbacks', 'missed', coalesce(outcome, CASE WHEN escalated_at IS NOT NULL "
        "                THEN 'escalated' END), CASE WHEN outcome IN ('in_time', 'late') THEN 'wait' END, "
        "                'rung', CASE WHEN outcome IN ('in_time', 'late') THEN 'back' END, "
        "                CASE WHEN outcome = 'in_time' THEN 'back_ok' END]) AS figure, "
        "         unnest(ARRAY['', '', '', (wait_seconds / 60 * 60)::text, '1000003', closed_by_id, "
        "                closed_by_id]) AS detail "
        "  FROM megaplan_callback WHERE account_id = :account AND client_phone LIKE :prefix || '%') AS f "
        "WHERE figure IS NOT NULL GROUP BY account_id, hour, figure, detail "
        "ON CONFLICT (account_id, hour, figure, detail) DO UPDATE SET n = megaplan_callback_tally.n + excluded.n"),
        params)


def report_page(stack: Stack, session, samples: int = 20) -> dict:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        response = session.get(stack.web_url + "/plugins/megaplan/callbacks/")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    return percentiles(times)


def add_missed(stack: Stack, account: str, n: int, prefix: str, days: int) -> None:
    """``n`` missed calls of ``account`` over the last ``days`` days, each its own callback:
    in time, late, the client again, and two open ones (handed on a minute after their deadline,
    as the writer does) in turn, one employee rung each."""
    import sqlalchemy as sa
    now = datetime.now(timezone.utc)
    params = {"n": n, "account": account, "prefix": prefix, "now": now, "span": days * 86400}
    with stack.engine().begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO megaplan_callback (account_id, client_phone, opened_at, last_missed_at, misses, due_at, "
            "outcome, closed_at, closed_by_id, closed_by_name, wait_seconds, escalated_at, created_at) "
            "SELECT :account, :prefix || i, t, t, 1, t + interval '30 minutes', "
            "(ARRAY['in_time', 'late', 'client', NULL, NULL])[i % 5 + 1], "
            "CASE WHEN i % 5 < 3 THEN t + (i % 5 * 20 + 10) * interval '1 minute' END, "
            "CASE WHEN i % 5 < 2 THEN '1000002' END, CASE WHEN i % 5 < 2 THEN 'Иван Иванов' END, "
            "CASE WHEN i % 5 < 3 THEN (i % 5 * 20 + 10) * 60 END, CASE WHEN i % 5 >= 3 THEN t + interval '31 minutes' END, :now "
            "FROM (SELECT i, :now - (i::bigint * :span / :n) * interval '1 second' AS t "
            "      FROM generate_series(1, :n) AS i) AS g"), params)
        conn.execute(sa.text(
            "INSERT INTO megaplan_outbox (kind, source, account_id, call_id, direction, client_phone, status, "
            "started_at, record, state, attempts, created_at, updated_at, callback_id) "
            "SELECT 'call', 'push', account_id, client_phone, 'in', client_phone, 'missed', opened_at, '{}', "
            "'sent', 1, opened_at, opened_at, id FROM megaplan_callback "
            "WHERE account_id = :account AND client_phone LIKE :prefix || '%'"), params)
        conn.execute(sa.text(
            "INSERT INTO megaplan_callback_rung (account_id, callback_id, call_id, employee_id, missed_at) "
            "SELECT account_id, id, client_phone, '1000003', opened_at FROM megaplan_callback "
            "WHERE account_id = :account AND client_phone LIKE :prefix || '%'"), params)
        count_tallies(conn, params)
    with stack.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("megaplan_outbox", "megaplan_callback", "megaplan_callback_rung", "megaplan_callback_tally"):
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))


def measure_report(stack: Stack, missed: int) -> tuple[dict, dict]:
    """(the page with 100 missed calls, {placement: the page with ``missed``})."""
    import sqlalchemy as sa
    add_missed(stack, "demo", 100, "7900", 30)
    report_page(stack, stack.cabinet, 5)  # warm
    small = report_page(stack, stack.cabinet)
    results = {}
    for name, days in (("within 30 days", 30), ("over 1,000 days", 1000)):
        add_missed(stack, "demo", missed - 100, "7901", days)
        results[name] = report_page(stack, stack.cabinet)
        with stack.engine().begin() as conn:
            for table, column in (("megaplan_callback_rung", "call_id"), ("megaplan_outbox", "call_id"),
                                  ("megaplan_callback", "client_phone")):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} LIKE '7901%'"))
            conn.execute(sa.text("DELETE FROM megaplan_callback_tally"))  # counted again from what is left
            count_tallies(conn, {"account": "demo", "prefix": "7900"})
    return small, results


def report_only(missed: int) -> None:
    """(g) alone, on a stack of its own with no workers."""
    started = time.monotonic()
    print("bench/scale.py --only report: the missed-calls report page, production processes")
    print(code_line())
    stack = Stack("production")
    try:
        stack.start_sandbox()
        stack.start_web()
        stack.configure_demo()
        print(machine("production"))
        small, results = measure_report(stack, missed)
    finally:
        stack.close()
    print_report(small, results, missed)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


def print_report(small: dict, results: dict, missed: int) -> None:
    for name, large in results.items():
        ratio = large["p50"] / small["p50"]
        print(f"(g) missed-calls report page, ms: 100 missed calls p50 {small['p50']:.1f} p99 {small['p99']:.1f}; "
              f"{missed:,} {name} p50 {large['p50']:.1f} p99 {large['p99']:.1f}: {ratio:.2f}x "
              f"— within 2x {verdict(ratio <= 2)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=150, help="calls of other accounts per fairness run")
    parser.add_argument("--rows", type=int, default=100_000, help="outbox rows for the sweeper and the journal")
    parser.add_argument("--few-accounts", type=int, default=5,
                        help="(e): the accounts of the first sweep's rows (demo and bench ones)")
    parser.add_argument("--rss-calls", type=int, default=5000)
    parser.add_argument("--hook-samples", type=int, default=3000)
    parser.add_argument("--missed", type=int, default=100_000, help="(g): missed calls of one account")
    parser.add_argument("--only", choices=["report"], help="measure (g) alone")
    args = parser.parse_args()
    if args.only == "report":
        report_only(args.missed)
        return
    started = time.monotonic()
    print(f"bench/scale.py: {args.accounts} accounts on one cabinet, production processes, "
          "Megaplan = sandbox in its own process")
    print(code_line())
    # The README's setup: two sync workers (one with the scheduler), one for popups, cron;
    # nothing per account to set (one writer per account takes turns with the others).
    stack = Stack("production")
    stack.start_sandbox()
    stack.start_web()
    stack.configure_demo()
    print(machine("production"))
    made = time.monotonic()
    accounts = add_accounts(stack, args.accounts)
    print(f"{args.accounts} accounts made in {time.monotonic() - made:.1f} s")

    # (a) before any worker runs: the hooks' jobs are dropped afterwards
    a = hooks(stack, accounts, args.hook_samples)
    stored = stack.scalar("SELECT count(*) FROM megaplan_outbox")
    assert stored == len(accounts) + 4 * args.hook_samples, f"the hooks stored {stored} calls"
    import sqlalchemy as sa
    with stack.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM megaplan_outbox"))
    stack.redis().flushdb()

    stack.start_production_workers(sync_workers=2)
    # (b)
    b = routing(stack, accounts)
    wait_until(stack.queues_idle, 180, "the route refreshes", interval=0.2, check=stack.check)

    # (c) without, then with the backlog; (d) while the backlog drains
    warm = others_delay(stack, accounts, 20)  # every worker has built its app
    assert all(x != float("inf") for x in warm), "warm-up calls never arrived"
    quiet = others_delay(stack, accounts, args.others)
    backlog_account, _, backlog_number = accounts[0]
    t0 = time.monotonic()
    add_backlog(stack, backlog_account, backlog_number, args.backlog)
    backlog_made = time.monotonic() - t0
    meter = CpuMeter(stack)
    before = meter.snapshot()
    busy = others_delay(stack, accounts, args.others)
    usage = CpuMeter.between(before, meter.snapshot())
    sync_pids = [w.pid for w in stack.workers if w.argv[-1] == "megaplan"]
    rss = {}
    for mark in (1000, args.rss_calls):
        wait_until(lambda: backlog_sent(stack) >= mark, 3600, f"{mark} backlog calls", interval=1,
                   check=stack.check)
        rss[mark] = [rss_mb(pid) for pid in sync_pids]
    backlog_left = args.backlog - backlog_sent(stack)
    for proc in list(stack.workers):
        stack.stop_worker(proc)
    for proc in [p for p in stack.procs if p.name == "cron"]:  # no sweep but the measured one
        proc.stop()
        stack.procs.remove(proc)
    stack.redis().flushdb()
    with stack.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM megaplan_outbox WHERE call_id LIKE 'BACKLOG%' AND state <> 'sent'"))

    # (e), (f)
    add_backlog(stack, "demo", "74950000001", 100, prefix="JOURNAL", queue=False, state="sent")  # a page's worth
    small = journal_page(stack, stack.cabinet)
    small_rows = stack.scalar("SELECT count(*) FROM megaplan_outbox WHERE account_id = 'demo'")
    few_accounts = ["demo"] + [a for a, _, _ in accounts[1:max(1, args.few_accounts)]]
    meter = CpuMeter(stack)
    before = meter.snapshot()
    e_few = sweeper(stack, args.rows, few_accounts, "SWEEPFEW")
    e_many = sweeper(stack, args.rows, [a for a, _, _ in accounts], "SWEEPMANY")
    sweep_usage = CpuMeter.between(before, meter.snapshot())
    # (f): the demo account with --rows calls (its share of the sweep's rows and more like them)
    demo_rows = stack.scalar("SELECT count(*) FROM megaplan_outbox WHERE account_id = 'demo' "
                             "AND call_id LIKE 'SWEEP%'")
    with stack.engine().begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO megaplan_outbox (kind, source, account_id, call_id, direction, client_phone, status, "
            "started_at, record, state, attempts, created_at, updated_at) "
            "SELECT 'call', 'push', 'demo', 'JRNLTOP' || n, 'in', '79161234567', 'answered', "
            ":start + n * interval '10 seconds' + interval '5 seconds', '{}', "
            "CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'sent' END, 1, :start, :start "
            "FROM generate_series(1, :rows) AS n"),
            {"start": datetime(2026, 1, 1, tzinfo=timezone.utc), "rows": max(0, args.rows - demo_rows)})
    with stack.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE megaplan_outbox"))
    large = journal_page(stack, stack.cabinet)
    large_failed = journal_page(stack, stack.cabinet, "?state=failed&date=2026-01-05")
    report_small, report_large = measure_report(stack, args.missed)  # (g)
    stack.close()

    print()
    one, many = a["one"], a["many"]
    ratio = many["p99"] / one["p99"]
    print(f"(a) the plugin's call_ended hook, ms: one account p50 {one['p50']:.3f} p99 {one['p99']:.3f}; "
          f"{args.accounts} accounts p50 {many['p50']:.3f} p99 {many['p99']:.3f}: {ratio:.2f}x "
          f"— flat (<= 1.25x) {verdict(ratio <= 1.25)}")
    h1, hn = a["host_one"], a["host_many"]
    print(f"    through the stub host's dispatch: one account p99 {h1['p99']:.3f}, {args.accounts} accounts "
          f"p99 {hn['p99']:.3f} ms: {hn['p99'] / h1['p99']:.2f}x (the stub's list of an account's "
          f"plugins lives 5 s; most of {args.accounts} accounts miss it)")
    for name, r in b.items():
        print(f"(b) routing, {ROUTE_CONCURRENCY} at once, Megaplan 5 s, {name}: n {r['n']}, p50 {r['p50']:.1f} "
              f"p99 {r['p99']:.1f} max {r['max']:.1f} ms; past the {r['deadline']} ms deadline: {r['late']} "
              f"— {verdict(r['late'] == 0)}")
    q, bz = percentiles(quiet), percentiles(busy)
    ratio = bz["p99"] / q["p99"]
    print(f"(c) push → «отправлен» for other accounts' calls ({args.others} at 5/s), s: no backlog p50 "
          f"{q['p50']:.2f} p99 {q['p99']:.2f}; while {backlog_account} drains {args.backlog} calls "
          f"(queued in {backlog_made:.0f} s) p50 {bz['p50']:.2f} p99 {bz['p99']:.2f}: {ratio:.2f}x "
          f"— within 1.5x {verdict(ratio <= 1.5)}")
    print("    CPU meanwhile: " + CpuMeter.describe(usage, group={"workers": "worker-"}))
    growth = max(b2 / b1 for b1, b2 in zip(rss[1000], rss[args.rss_calls]))
    print(f"(d) sync worker RSS, MB: after 1,000 backlog calls {', '.join(f'{x:.0f}' for x in rss[1000])}; "
          f"after {args.rss_calls:,} {', '.join(f'{x:.0f}' for x in rss[args.rss_calls])}: {growth:.2f}x "
          f"— no growth (<= 1.10x) {verdict(growth <= 1.10)}; backlog left undrained when stopped: {backlog_left}")
    for e in (e_few, e_many):
        print(f"(e) sweep over {e['rows']:,} waiting calls of {e['accounts']:,} accounts: "
              f"{e['first']:.3f} s with no writer queued (woke {e['first_accounts']:,} accounts, "
              f"queued {e['first_queued']:,} writers), {e['again']:.3f} s again with every writer waiting "
              f"(queued {e['again_queued']:,}) — < 2 s {verdict(max(e['first'], e['again']) < 2)}, one writer "
              f"per account {verdict(e['first_queued'] == e['accounts'] and e['again_queued'] == 0)}")
    print("    CPU during (e) (inserts and VACUUM included): " + CpuMeter.describe(sweep_usage))
    ratio = large["p50"] / small["p50"]
    print(f"(f) journal page, ms: {small_rows} rows p50 {small['p50']:.1f} p99 {small['p99']:.1f}; "
          f"{args.rows + small_rows:,} rows p50 {large['p50']:.1f} p99 {large['p99']:.1f} "
          f"(filtered by state and day: p50 {large_failed['p50']:.1f}): {ratio:.2f}x "
          f"— within 2x {verdict(ratio <= 2)}")
    print_report(report_small, report_large, args.missed)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
