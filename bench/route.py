"""route_request latency through the host's routing path (issues 7, 16).

Run: .venv/bin/python bench/route.py [--numbers 10000] [--samples 2000] [--http-samples 400]
                                     [--cold-samples 200] [--slow-samples 100] [--slow-ms 5000]

The README's production processes (PostgreSQL, Redis, `flask --app host_stub run`, the
`rq worker`s and `rq cron`) with the Megaplan sandbox in its own process; the demo account
has «переадресация на персонального менеджера» on and --numbers clients in the plugin's client
index (megaplan_client_phone, ``ClientPhone``, for the demo's credential), their managers the
sandbox's employees with internal numbers (ivanov 101, petrova 102, sidorov 103). Two paths:

* host.route(...): the host's own routing call (its thread pool and CABINET_ROUTE_TIMEOUT_MS
  deadline) in a cabinet app in this process, on the same PostgreSQL and Redis;
* HTTP: `POST /pbx/demo/crm` with `cmd=contact` on the real web server, as the PBX asks.

Kinds of number: warm (asked before: the route cache in memory), known (in the client index,
first ask: one indexed read), cold
(never seen, unknown to Megaplan). Each with Megaplan fast and with every Megaplan request
taking --slow-ms (sandbox latency), in alternating rounds (fast, slow, slow, fast, …) so that
the drift of a shared machine hits both alike.
Baselines in the same run: a bare indexed lookup of the client index (SQLAlchemy, same
database, by credential and national number) for host.route; for HTTP, the same door with `cmd=rating` to an account without the plugin (token check, parse, a hook
call with no implementation).

With --deals open deals (every 5th client has one, its manager Иванов) and --employees Megaplan
employees in the index (some on vacation or fired; Сидоров on vacation), routing on with
«Сначала ответственный по сделке» and the default responsible as the fallback: each answer is
checked against the manager it must be (the deal's, else the client's responsible, else the
default responsible for Сидоров's clients). --deals 0 --employees 3 measures routing without them.
Goals: p99 with Megaplan slow within 1.2x of p99 with it fast; p99 <= 2x the bare lookup's.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import CpuMeter, Pusher, Stack, code_line, machine, percentiles, wait_until  # noqa: E402


def event(phone: str):
    from host_stub.types import CallEvent
    return CallEvent("demo", uuid.uuid4().hex, "in", phone, "74950000001", None, datetime.now(timezone.utc))


def contact(pusher: Pusher, phone: str) -> dict:
    return pusher.push(cmd="contact", phone=phone, diversion="74950000001", callid=uuid.uuid4().hex.upper())


def timed(fn, items) -> tuple[list[float], list]:
    samples, answers = [], []
    for item in items:
        t0 = time.perf_counter()
        answers.append(fn(item))
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=10_000, help="clients in the client index")
    parser.add_argument("--samples", type=int, default=2000, help="warm and known asks via host.route")
    parser.add_argument("--http-samples", type=int, default=400, help="warm and known asks over HTTP")
    parser.add_argument("--cold-samples", type=int, default=200, help="cold asks with Megaplan fast")
    parser.add_argument("--slow-samples", type=int, default=100, help="cold asks with Megaplan slow")
    parser.add_argument("--slow-ms", type=float, default=5000)
    parser.add_argument("--rounds", type=int, default=4, help="fast/slow alternations")
    parser.add_argument("--deals", type=int, default=2000, help="open deals in the index")
    parser.add_argument("--employees", type=int, default=50, help="Megaplan employees in the index")
    args = parser.parse_args()
    started = time.monotonic()
    print("bench/route.py: route_request (PBX `contact`) latency, production processes, "
          "Megaplan = sandbox in its own process")
    print("goals: p99 with Megaplan slow within 1.20x of p99 with it fast; p99 <= 2.00x a bare "
          "indexed lookup of the client index")
    print(code_line())

    from datetime import date, timedelta

    from sqlalchemy import func, insert, select, update
    from host_stub.db import db
    from megaplan_plugin import phones as plugin_phones
    from megaplan_plugin.models import ClientPhone, Credential, MegaplanEmployee, OpenDeal

    stack = Stack("production")
    stack.start_sandbox()
    stack.start_web()
    with_deals = args.deals > 0
    stack.configure_demo(route_to_manager="y", route_fallback="default",
                         deal_manager_first="y" if with_deals else None)
    stack.start_production_workers(sync_workers=1)
    print(machine("production"))
    deadline = int(stack.env.get("CABINET_ROUTE_TIMEOUT_MS", "1000"))
    app = stack.app()
    host = app.extensions["cabinet"]
    pusher = Pusher(stack.web_url)

    # The activation's index run (and cron's first index_all) rebuilds the index from Megaplan,
    # dropping clients the sandbox does not have: the bench's numbers go in after it.
    wait_until(lambda: stack.scalar("SELECT count(*) FROM megaplan_client_phone") > 0 and stack.queues_idle(),
               120, "the activation's client index", interval=0.1, check=stack.check)
    # --numbers clients in the index of the demo's credential, their managers the sandbox's
    # employees with internal numbers, in turn: the answer must name each one's PBX login.
    managers = [("1000002", "ivanov"), ("1000003", "petrova"), ("1000004", "sidorov")]
    phones = [f"7900{n:07d}" for n in range(args.numbers)]
    has_deal = {n for n in range(0, args.numbers, 5)} if with_deals else set()
    has_deal = set(sorted(has_deal)[:args.deals])

    def manager_of(n):
        if n in has_deal:
            return "ivanov"                       # the deal's manager
        login = managers[n % len(managers)][1]
        return "petrova" if login == "sidorov" and args.employees > 3 else login  # Сидоров is away

    login_of = {p: manager_of(n) for n, p in enumerate(phones)}
    with app.app_context():
        (credential_id,) = db.session.execute(select(Credential.id).where(
            Credential.account_id == "demo")).scalars().all()
        db.session.execute(insert(ClientPhone), [
            {"credential_id": credential_id, "national": plugin_phones.national(p),
             "contractor_type": "ContractorHuman", "contractor_id": str(5_000_000 + n),
             "name": f"Клиент {n}", "responsible_id": managers[n % len(managers)][0],
             "megaplan_updated_at": "2026-11-01T00:00:00+00:00"}
            for n, p in enumerate(phones)])
        if with_deals:
            db.session.execute(insert(OpenDeal), [
                {"credential_id": credential_id, "deal_id": str(9_100_000 + n), "contractor_id": str(5_000_000 + n),
                 "name": f"Сделка {n}", "manager_id": "1000002", "megaplan_updated_at": "2026-11-02T00:00:00+00:00"}
                for n in sorted(has_deal)])
        if args.employees > 3:
            today = date.today()
            db.session.execute(update(MegaplanEmployee).where(
                MegaplanEmployee.credential_id == credential_id, MegaplanEmployee.megaplan_id == "1000004").values(
                vacation_first=today.isoformat(), vacation_last=(today + timedelta(days=7)).isoformat()))
            present = db.session.execute(select(func.count()).select_from(MegaplanEmployee).where(
                MegaplanEmployee.credential_id == credential_id)).scalar()
            db.session.execute(insert(MegaplanEmployee), [
                {"credential_id": credential_id, "megaplan_id": str(1_100_000 + n), "name": f"Сотрудник {n}",
                 "internal_number": str(200 + n), "working": n % 7 != 0,
                 "vacation_first": today.isoformat() if n % 5 == 0 else None,
                 "vacation_last": (today + timedelta(days=3)).isoformat() if n % 5 == 0 else None}
                for n in range(max(0, args.employees - present))])
        db.session.commit()
        db.session.remove()
    with stack.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("megaplan_client_phone", "megaplan_deal", "megaplan_employee"):
            conn.exec_driver_sql(f"ANALYZE {table}")  # what autovacuum does soon after
    rng = random.Random(17)
    shuffled = phones[:]
    rng.shuffle(shuffled)
    take = iter(shuffled)

    def numbers(n):
        return [next(take) for _ in range(n)]

    n_host = min(args.samples, len(phones) // 4)
    n_http = min(args.http_samples, len(phones) // 8)
    # Disjoint sets: host.route's memory and the web process's memory are separate, and a
    # "known" number must be asked for the first time.
    warmup = {"host": numbers(100), "http": numbers(50)}
    host_known = {"fast": numbers(n_host // 2), "slow": numbers(n_host // 2)}
    http_known = {"fast": numbers(n_http // 2), "slow": numbers(n_http // 2)}

    def cold_numbers(n):
        return ["7911" + str(uuid.uuid4().int)[:7] for _ in range(n)]

    rows = {}   # (path, kind, megaplan) → samples (ms)
    errors = []
    meter = CpuMeter(stack)
    usage = {}

    def route_in_host(phone):
        return host.route("demo", event(phone))

    def http_contact(phone):
        return contact(pusher, phone)

    def expect_login(numbers, answers, what):
        wrong = [(p, a) for p, a in zip(numbers, answers)
                 if (a.user_login if hasattr(a, "user_login") else (a or {}).get("responsible")) != login_of[p]]
        if wrong:
            errors.append(f"{what}: {len(wrong)} of {len(answers)} not routed to their manager, "
                          f"e.g. {wrong[0][0]} (manager {login_of[wrong[0][0]]}): {wrong[0][1]!r}")

    def bare_lookup(phone):
        db.session.execute(select(ClientPhone).where(
            ClientPhone.credential_id == credential_id,
            ClientPhone.national == plugin_phones.national(phone))).scalar_one()

    def door(_):
        pusher.push(account="other", crm_token="other-crm-token", cmd="rating",
                    callid=uuid.uuid4().hex.upper(), rating="5")

    def interleaved(a, b, items):
        """Alternate two measurements over the same items so that drift hits both alike."""
        first, second = [], []
        for item in items:
            first += timed(a, [item])[0]
            second += timed(b, [item])[0]
        return first, second

    def idle():
        try:
            wait_until(stack.queues_idle, 120, "the background route refreshes", interval=0.1, check=stack.check)
        except TimeoutError:
            pass

    def chunks(items, n):
        return [items[i::n] for i in range(n)]

    rounds = max(1, args.rounds)
    plan = {speed: {"host": chunks(host_known[speed], rounds), "http": chunks(http_known[speed], rounds),
                    "cold": (args.cold_samples if speed == "fast" else args.slow_samples) // rounds}
            for speed in ("fast", "slow")}

    def add(key, samples):
        rows.setdefault(key, []).extend(samples)

    def measure(speed: str, r: int) -> None:
        """Round r of every kind on both paths, with Megaplan as it is now (``speed``)."""
        host_numbers, http_numbers, cold_n = plan[speed]["host"][r], plan[speed]["http"][r], plan[speed]["cold"]
        with app.app_context():
            samples, answers = timed(route_in_host, host_numbers)
            add(("host.route", "known", speed), samples)
            expect_login(host_numbers, answers, f"host.route known, Megaplan {speed}")
            # warm: the same numbers again, alternating with the bare lookup of each
            bare, warm = interleaved(bare_lookup, route_in_host, host_numbers)
            add(("bare lookup", "indexed", "—"), bare)
            add(("host.route", "warm", speed), warm)
            before = meter.snapshot()
            # cold asks start background refreshes that load the machine: the bare lookup is
            # measured alongside them, under the same load
            bare, cold = interleaved(lambda _: bare_lookup(rng.choice(phones)), route_in_host,
                                     cold_numbers(cold_n))
            add(("bare lookup", "during cold asks", speed), bare)
            add(("host.route", "cold", speed), cold)
            usage.setdefault(f"host.route cold, Megaplan {speed}", []).append(
                CpuMeter.between(before, meter.snapshot()))
            db.session.remove()
        samples, answers = timed(http_contact, http_numbers)
        add(("HTTP", "known", speed), samples)
        expect_login(http_numbers, answers, f"HTTP known, Megaplan {speed}")
        base, warm = interleaved(door, http_contact, http_numbers)
        add(("HTTP", "door (cmd=rating)", "—"), base)
        add(("HTTP", "warm", speed), warm)
        add(("HTTP", "cold", speed), timed(http_contact, cold_numbers(cold_n))[0])

    # Warm-up (not measured): connection pools of the route threads and of the web process.
    with app.app_context():
        timed(route_in_host, warmup["host"] + cold_numbers(20))
        db.session.remove()
    timed(http_contact, warmup["http"] + cold_numbers(10))
    idle()
    # Rounds alternate fast and slow (fast, slow, slow, fast, …) so that the machine's drift
    # (other processes share it) hits both alike. Slow: every request to the sandbox takes
    # --slow-ms, the background refreshes the cold asks cause included.
    speeds = [s for r in range(rounds) for s in (("fast", "slow") if r % 2 == 0 else ("slow", "fast"))]
    done = {"fast": 0, "slow": 0}
    for n, speed in enumerate(speeds):
        if n and speeds[n - 1] == "fast":
            idle()  # the refreshes a fast round started run on CPU; let them finish first
        stack.sandbox_faults(latency_ms=args.slow_ms if speed == "slow" else 0)
        measure(speed, done[speed])
        done[speed] += 1
    stack.sandbox_faults(latency_ms=0)
    stack.close()

    bare99 = percentiles(rows[("bare lookup", "indexed", "—")])["p99"]
    door99 = percentiles(rows[("HTTP", "door (cmd=rating)", "—")])["p99"]
    print(f"open deals: {len(has_deal)}; Megaplan employees: {args.employees} (Сидоров on vacation)" if with_deals
          else "no open deals, no absences")
    print(f"known numbers: {args.numbers}; CABINET_ROUTE_TIMEOUT_MS {deadline}; Megaplan slow = "
          f"{args.slow_ms:.0f} ms per request; times in ms")
    print(f"{'path':<12}{'number':<20}{'Megaplan':<10}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}"
          f"{'slow/fast':>11}{'vs base':>9}  goals")
    order = [("host.route", "bare lookup", "indexed")] + [("host.route", "host.route", k) for k in ("warm", "known")] \
        + [("bare", "bare lookup", "during cold asks"), ("host.route", "host.route", "cold")] \
        + [("HTTP", "HTTP", "door (cmd=rating)")] + [("HTTP", "HTTP", k) for k in ("warm", "known", "cold")]
    for group, path, kind in order:
        speeds = ["—"] if kind in ("indexed", "door (cmd=rating)") else ["fast", "slow"]
        for speed in speeds:
            stats = percentiles(rows[(path, kind, speed)])
            base = bare99 if group == "host.route" else door99
            if kind == "cold" and group == "host.route":
                base = percentiles(rows[("bare lookup", "during cold asks", speed)])["p99"]
            slow_fast, goals = "", ""
            if speed == "slow" and group != "bare":
                fast99 = percentiles(rows[(path, kind, "fast")])["p99"]
                ratio = stats["p99"] / fast99
                slow_fast = f"{ratio:.2f}"
                goals = "slow/fast " + ("met" if ratio <= 1.2 else "NOT met")
            if speed != "—" and group != "bare":
                vs = stats["p99"] / base
                if group == "host.route":
                    goals = (goals + ", " if goals else "") + "<=2x bare " + ("met" if vs <= 2 else "NOT met")
            vs_text = f"{stats['p99'] / base:.2f}" if speed != "—" and group != "bare" else "1.00"
            print(f"{path:<12}{kind:<20}{speed:<10}{stats['n']:>6}{stats['p50']:>9.3f}{stats['p99']:>9.3f}"
                  f"{stats['max']:>9.3f}{slow_fast:>11}{vs_text:>9}  {goals}")
    print("vs base: p99 / p99 of the bare indexed lookup (host.route rows; for cold asks the bare "
          "lookups interleaved with them) or of the same door without routing (HTTP rows); the "
          "goals are judged on host.route")
    for what, runs in usage.items():
        u = runs[0]
        print(f"CPU during {what} (round 1): " + CpuMeter.describe(u, group={"workers": "worker-"}))
    for error in errors:
        print("ROUTING ERROR: " + error)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
