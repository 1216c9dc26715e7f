"""Ring → popup latency (issue 17), as production runs it and on the embedded defaults.

Run: .venv/bin/python bench/popup.py [--burst-seconds 20] [--spread-seconds 10] [--accounts 100]

Latency is the time from sending the PBX's `cmd=event type=INCOMING` push to the cabinet
(`POST /pbx/<account>/crm` on the real web server) to the moment the Megaplan sandbox, in a
process of its own, receives the request that creates the call's CallInfo (stamped by the
sandbox on arrival, `GET /_sandbox/probe`); for (c), from the `ACCEPTED` push to the request
that moves it to state `talking`. Both clocks are this machine's wall clock.

(a) a burst of 3 rings/s on one account (demo) for --burst-seconds;
(b) 30 rings/s spread over --accounts accounts for --spread-seconds (the accounts are made in
    the database through host_stub.models: PBX users 101–103, the plugin enabled, the sandbox's
    credentials (checked once by the plugin's own store, copied to the others) and settings
    active); one untimed ring per account first, so each worker has met each account once;
(c) 3 calls/s for 10 s, each ACCEPTED 1 s after its ring.
Setups: (i) the README's production processes (PostgreSQL, Redis, `rq worker …
megaplan-live megaplan`, `rq worker … megaplan-live`, `flask megaplan scheduler`, `rq cron …`); (ii) embedded defaults
(`flask run` without REDIS_URL, SQLite: the workers are threads of the web process).
Goal: p99 <= 300 ms and nothing over 1 s.
"""
from __future__ import annotations

import argparse
import itertools
import os
import secrets
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (DEMO_TOKEN, SANDBOX_LOGIN, SANDBOX_PASSWORD, CpuMeter, Pusher, Stack,  # noqa: E402
                    code_line, event_fields, machine, percentiles, settings_store, wait_until)

USERS = [("ivanov", "101"), ("petrova", "102"), ("sidorov", "103")]
GOAL_P99_MS, GOAL_MAX_MS = 300, 1000


def new_id() -> str:
    return uuid.uuid4().hex.upper()


# -- accounts -----------------------------------------------------------------------------------

def add_accounts(stack: Stack, n: int) -> list[tuple[str, str, str]]:
    """n accounts configured like demo; returns (account, crm_token, virtual number) each.

    The first account's credentials are checked and stored by the plugin's own store
    (a real login to the sandbox, employees and internal numbers fetched); the others get a
    copy of that row (password and tokens encrypted with the same key) and of its employees,
    as if each admin had typed the same login: one login instead of a hundred. One commit.
    """
    from sqlalchemy import insert, select
    from host_stub.db import db
    from host_stub.models import Account, EnabledPlugin
    from host_stub.types import PbxUser
    from megaplan_plugin.models import Credential, MegaplanEmployee, Settings
    account_settings = settings_store()
    app = stack.app()
    made = [(f"bench{i:03d}", f"bench-crm-token-{i:03d}", f"7495{2000000 + i:07d}") for i in range(n)]
    with app.app_context():
        result = account_settings.check_and_store_credential(
            made[0][0], title="Песочница", login=SANDBOX_LOGIN, password=SANDBOX_PASSWORD,
            domain=stack.sandbox_url)
        if result.credential is None:
            raise RuntimeError(f"credentials of {made[0][0]}: {result.error}")
        template = result.credential
        employees = [dict(megaplan_id=e.megaplan_id, name=e.name, position=e.position,
                          internal_number=e.internal_number)
                     for e in db.session.execute(select(MegaplanEmployee).where(
                         MegaplanEmployee.credential_id == template.id)).scalars()]
        accounts, credentials = [], [template]
        for i, (name, token, number) in enumerate(made):
            account = Account(name=name, title=f"Бенчмарк {i}")
            account.set_password(secrets.token_hex(8))
            app.extensions["cabinet"].pbx.store.add_account(
                name, token, [PbxUser(login, login, ext, None) for login, ext in USERS], [number])
            accounts.append(account)
            if i:
                credentials.append(Credential(
                    account_id=name, title=template.title, login=template.login, base_url=template.base_url,
                    password_enc=template.password_enc, access_token_enc=template.access_token_enc,
                    refresh_token_enc=template.refresh_token_enc, token_expires_at=template.token_expires_at,
                    megaplan_user_name=template.megaplan_user_name,
                    employees_fetched_at=template.employees_fetched_at))
        db.session.add_all(accounts + credentials[1:])
        db.session.flush()
        db.session.add_all(EnabledPlugin(account_id=a.id, plugin_key="megaplan") for a in accounts)
        db.session.execute(insert(MegaplanEmployee), [{**e, "credential_id": c.id}
                                                      for c in credentials[1:] for e in employees])
        db.session.add_all(Settings(account_id=name, credential_id=c.id, active=True,
                                    default_responsible_id="1000003", api_key=secrets.token_hex(16),
                                    virtual_numbers=[], communication_types=["in", "out", "missed"])
                           for (name, _, _), c in zip(made, credentials))
        db.session.commit()
        db.session.remove()
    return made


# -- sending pushes on a timetable and reading the sandbox's stamps -----------------------------

class Timeline:
    """Sends pushes at planned moments from a thread pool; remembers when each really left."""

    def __init__(self, pusher: Pusher, threads: int = 32):
        self.pusher = pusher
        self.pool = ThreadPoolExecutor(threads)
        self.sent: dict[tuple[str, str], float] = {}   # (call id, event type) → time.time()
        self.push_seconds: list[float] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def _send(self, account: str, token: str, fields: dict) -> None:
        key = (fields["callid"], fields["type"])
        started = time.time()
        try:
            self.pusher.push(account, token, **fields)
        except Exception as exc:  # reported, not fatal: a refused push is a finding
            with self._lock:
                self.errors.append(f"{key}: {exc}")
            return
        with self._lock:
            self.sent[key] = started
            self.push_seconds.append(time.time() - started)

    def run(self, plan: list[tuple[float, str, str, dict]]) -> None:
        """plan: (seconds from now, account, crm token, event fields), in any order."""
        begin = time.monotonic() + 0.1
        futures = []
        for offset, account, token, fields in sorted(plan, key=lambda p: p[0]):
            delay = begin + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self._send, account, token, fields))
        for future in futures:
            future.result()


def collect(stack: Stack, since: int, wanted: dict[str, float], state: str, timeout: float) -> dict[str, float]:
    """{call id: seconds from its push to the first matching CallInfo write}, waiting at most
    ``timeout`` s for those that have not arrived."""
    got: dict[str, float] = {}

    def arrived():
        for s in stack.probe(since)["stamps"]:
            cid = s.get("providerId")
            if cid in wanted and cid not in got and s.get("state") == state and \
                    (state != "calling" or s.get("create")):
                got[cid] = s["at"] - wanted[cid]
        return len(got) >= len(wanted)

    try:
        wait_until(arrived, timeout, f"{len(wanted)} popups", interval=0.1, check=stack.check)
    except TimeoutError:
        pass
    return got


def stamp_index(stack: Stack) -> int:
    return stack.probe(since=1 << 40)["stamp_count"]


def settle(stack: Stack) -> None:
    if stack.mode == "production":
        wait_until(stack.queues_idle, 60, "the queues to be idle", interval=0.05, check=stack.check)


# -- scenarios ------------------------------------------------------------------------------------

def rings(stack: Stack, timeline_args: list[tuple[float, str, str, dict]]) -> tuple[dict, dict, Timeline]:
    since = stamp_index(stack)
    timeline = Timeline(Pusher(stack.web_url))
    meter = CpuMeter(stack)
    before = meter.snapshot()
    timeline.run(timeline_args)
    wanted = {cid: at for (cid, kind), at in timeline.sent.items() if kind == "INCOMING"}
    got = collect(stack, since, wanted, "calling", timeout=15)
    usage = CpuMeter.between(before, meter.snapshot())
    settle(stack)
    return wanted, {"latency": got, "usage": usage}, timeline


def ring_plan(accounts: list[tuple[str, str, str]], rate: float, seconds: float, phone=None):
    users = itertools.cycle(USERS)
    plan = []
    for i in range(int(rate * seconds)):
        account, token, number = accounts[i % len(accounts)]
        login, ext = next(users)
        plan.append((i / rate, account, token, event_fields(
            new_id(), "INCOMING", user=login, ext=ext, diversion=number,
            phone=phone or "7999" + str(uuid.uuid4().int)[:7])))
    return plan


def warm(stack: Stack, accounts) -> None:
    """Rings until every popup worker has finished a job (each builds the app on its first)."""
    pusher = Pusher(stack.web_url)
    since = stamp_index(stack)
    live_pids = [w.pid for w in stack.workers if "megaplan-live" in w.argv]
    sent = {}
    deadline = time.monotonic() + 90
    while True:
        cid = new_id()
        account, token, number = accounts[0]
        sent[cid] = time.time()
        pusher.push(account, token, **event_fields(cid, "INCOMING", ext="101", diversion=number))
        got = collect(stack, since, {cid: sent[cid]}, "calling", timeout=30)
        done = stack.jobs_done_per_worker() if live_pids else {}
        if got and all(done.get(pid, 0) > 0 for pid in live_pids) and len(sent) >= 3:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("popup workers never all ran a job")
        # two at once so that a second worker is free to take one
        cid2 = new_id()
        pusher.push(account, token, **event_fields(cid2, "INCOMING", ext="102", diversion=number))
    settle(stack)


def scenario_c(stack: Stack, demo, rate: float = 3, seconds: float = 10, accept_after: float = 1.0):
    account, token, number = demo
    plan = []
    users = itertools.cycle(USERS)
    for i in range(int(rate * seconds)):
        cid, (login, ext) = new_id(), next(users)
        plan.append((i / rate, account, token, event_fields(cid, "INCOMING", user=login, ext=ext,
                                                             diversion=number)))
        plan.append((i / rate + accept_after, account, token, event_fields(cid, "ACCEPTED", user=login,
                                                                            ext=ext, diversion=number)))
    since = stamp_index(stack)
    timeline = Timeline(Pusher(stack.web_url))
    meter = CpuMeter(stack)
    before = meter.snapshot()
    timeline.run(plan)
    wanted = {cid: at for (cid, kind), at in timeline.sent.items() if kind == "ACCEPTED"}
    got = collect(stack, since, wanted, "talking", timeout=15)
    usage = CpuMeter.between(before, meter.snapshot())
    settle(stack)
    return wanted, {"latency": got, "usage": usage}, timeline


def run_setup(mode: str, args) -> dict:
    results = {}
    with Stack(mode) as stack:
        stack.start_sandbox()
        stack.start_web()
        stack.configure_demo()
        demo = ("demo", DEMO_TOKEN, "74950000001")
        made = time.monotonic()
        accounts = add_accounts(stack, args.accounts)
        results["accounts_seconds"] = time.monotonic() - made
        if mode == "production":
            stack.start_production_workers(sync_workers=1)
        results["machine"] = machine(mode)
        warm(stack, [demo])

        wanted, out, tl = rings(stack, ring_plan([demo], 3, args.burst_seconds, phone="79161234567"))
        results["a"] = (wanted, out, tl)

        # (b): one untimed ring per account, then the measured spread.
        rings(stack, ring_plan(accounts, 30, len(accounts) / 30))
        wanted, out, tl = rings(stack, ring_plan(accounts, 30, args.spread_seconds))
        results["b"] = (wanted, out, tl)

        wanted, out, tl = scenario_c(stack, demo)
        results["c"] = (wanted, out, tl)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst-seconds", type=float, default=20)
    parser.add_argument("--spread-seconds", type=float, default=10)
    parser.add_argument("--accounts", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    print("bench/popup.py: ring → popup latency, PBX push sent → the sandbox (own process) "
          "receives the CallInfo write")
    print(f"goal: p99 <= {GOAL_P99_MS} ms and nothing over {GOAL_MAX_MS} ms")
    print(code_line())
    setups = {}
    for mode in ("production", "embedded"):
        setups[mode] = run_setup(mode, args)
    print(setups["production"]["machine"].replace("machine:", "production run:"))
    print(setups["embedded"]["machine"].replace("machine:", "embedded run:  "))
    print(f"{args.accounts} extra accounts made in "
          f"{setups['production']['accounts_seconds']:.1f} s (production), "
          f"{setups['embedded']['accounts_seconds']:.1f} s (embedded)")
    print()
    names = {"a": f"(a) 3 rings/s, 1 account, {args.burst_seconds:.0f} s",
             "b": f"(b) 30 rings/s, {args.accounts} accounts, {args.spread_seconds:.0f} s",
             "c": "(c) ACCEPTED → talking, 3 calls/s, 10 s"}
    header = (f"{'scenario':<40}{'setup':<12}{'n':>5}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"
              f"{'>1s':>5}{'lost':>6}{'push p99':>10}  goal")
    print("latency in ms" + " " * (len(header) - 13))
    print(header)
    notes = []
    baseline = {}
    for key in ("a", "b", "c"):
        for mode in ("production", "embedded"):
            wanted, out, timeline = setups[mode][key]
            ms = [v * 1000 for v in out["latency"].values()]
            stats = percentiles(ms)
            lost = len(wanted) - len(ms)
            over = sum(1 for v in ms if v > GOAL_MAX_MS)
            push = percentiles([v * 1000 for v in timeline.push_seconds])
            met = stats["p99"] <= GOAL_P99_MS and over == 0 and lost == 0 and not timeline.errors
            print(f"{names[key]:<40}{mode:<12}{stats['n']:>5}{stats['p50']:>8.0f}{stats['p90']:>8.0f}"
                  f"{stats['p99']:>8.0f}{stats['max']:>8.0f}{over:>5}{lost:>6}{push['p99']:>10.0f}  "
                  f"{'met' if met else 'NOT met'}")
            if mode == "embedded":
                baseline[key] = stats["p99"]
            if timeline.errors:
                notes.append(f"{names[key]} {mode}: {len(timeline.errors)} pushes refused, e.g. {timeline.errors[0]}")
            usage = out["usage"]
            cpu = {k: v * usage["wall"] * 1000 / max(1, len(wanted)) for k, v in usage["cores"].items()}
            cabinet = sum(v for k, v in cpu.items() if k == "web" or k.startswith("worker-"))
            ours = sum(v for k, v in cpu.items() if k != "bench")
            notes.append(f"{names[key]} {mode}: " + CpuMeter.describe(usage, group={"workers": "worker-"})
                         + f"; CPU per call: cabinet (web + workers) {cabinet:.0f} ms, with sandbox, "
                         f"PostgreSQL, Redis {ours:.0f} ms = at most {1000 * os.cpu_count() / max(ours, 1e-9):.0f} "
                         f"calls/s on {os.cpu_count()} free cores")
    print()
    print("p99 production / p99 embedded (same run): " + ", ".join(
        f"{key} {percentiles([v * 1000 for v in setups['production'][key][1]['latency'].values()])['p99'] / baseline[key]:.2f}x"
        for key in ("a", "b", "c") if baseline.get(key)))
    print("lost: rings whose CallInfo never reached the sandbox within 15 s of the last push; "
          "push p99: the web server's answer to the PBX push")
    print("CPU while each scenario ran:")
    for note in notes:
        print("  " + note)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
