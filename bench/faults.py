"""The fault table of issue 22: what a fault in the middle of a run does to the calls.

Run: .venv/bin/python bench/faults.py [--calls N] [--mode production|embedded|both] [--only SCENARIO,...]

For every mode and scenario a fresh cabinet (``_procs.Stack``) is started as the README runs it:

* production: PostgreSQL, a PRIVATE ``redis-server`` this script starts on a free port (never the
  machine's shared Redis: a scenario restarts or flushes it), the sandbox in its own process,
  ``flask --app host_stub run``, ``rq worker -w …CabinetWorker megaplan-live megaplan``,
  ``rq worker -w …CabinetWorker megaplan-live``, ``flask megaplan scheduler`` and
  ``rq cron …cron_config``;
* embedded: the web process alone on SQLite (its workers, scheduler, cron and Redis live in it).

Processes that exit are started again as a supervisor (systemd) would, and the output says so.
The sweep runs every ``--sweep`` seconds (``MEGAPLAN_SWEEP_SECONDS``, default 10 here, 60 in
production) so that a run does not wait minutes for it.

The plugin is enabled against the sandbox with: create a client on an incoming call from an
unknown number, a contact on an outgoing one, and communications (todos) for in/out/missed calls.
N calls are pushed through ``POST /pbx/demo/crm`` over ``--push-seconds``: about half incoming
answered with a popup (INCOMING, ACCEPTED, history), a quarter missed incoming from new numbers
(half of them ringing first: INCOMING, CANCELLED, history), a quarter outgoing to new numbers;
one call in eight is a known client's (the sandbox's seeded 79161234567). A third of the way
in, the scenario's fault is applied; then the script waits (bounded) until every call's outbox
row is terminal, and counts in the sandbox:

* lost: PBX call ids with no CallInfo (``providerId``);
* dup CallInfo: CallInfo beyond the first per providerId; dup clients: contractors beyond the
  first per new number; dup todos: todos beyond the first per CallInfo;
* open popups: our CallInfo whose state is not ``finished``;
* not sent: calls whose outbox row is not ``sent`` (or missing);
* delivered within: from the fault's end to the last outbox row turning ``sent``;
* push retries: pushes the cabinet did not take at once (connection refused while its web
  process restarts, a 5xx such as 503 "database unavailable") and that were sent again.

A push the cabinet could not take (connection refused while its web process restarts, a 5xx) is
sent again until it is taken, as the scenario is about delivery, not about the PBX's own retries
(the real PBX does not resend: such a call waits for reconciliation); the table counts them. If a scenario loses or duplicates anything, the processes' logs
are kept (path printed) and the lines that look like errors are summarised.
"""
from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path

# -- private redis-server: registered before _procs is imported, so that at exit (atexit runs
# last-registered first) the stacks are closed before their Redis goes away. -----------------
_redis_servers: list["PrivateRedis"] = []


def _stop_redis_servers() -> None:
    for server in list(_redis_servers):
        server.stop()


atexit.register(_stop_redis_servers)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402

from _procs import (DEMO_TOKEN, Pusher, Stack, code_line, event_fields, free_port,  # noqa: E402
                    history_fields, wait_until)

SCENARIOS = ["none", "redis-restart", "flushall", "lost-answers", "worker-kill", "megaplan-500",
             "megaplan-429", "latency", "pushes-x3"]
KNOWN_PHONE = "79161234567"  # «Кузнецов Сергей» in the sandbox's seed
SETTINGS = {"create_client_on_incoming": "y", "create_contact_on_outgoing": "y",
            "create_communication": "y", "communication_types": ["in", "out", "missed"]}
CLIENT_READ_TIMEOUT = 15  # the plugin's Megaplan client: connect 3 s + read 15 s
LOG_KEEP_ROOT = Path(tempfile.gettempdir()) / "bench-faults-logs"


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class PrivateRedis:
    """``redis-server --port P --save "" --appendonly no --daemonize no`` as our subprocess."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        _redis_servers.append(self)

    def start(self) -> None:
        self.starts += 1
        logfile = open(self.tmp / f"redis-server#{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--maxmemory-policy", "noeviction",
             "--dir", str(self.tmp)],
            stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        logfile.close()
        wait_until(self.ping, 20, f"redis-server on port {self.port}", interval=0.02, check=self._check)

    def _check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")

    def ping(self) -> bool:
        import redis
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def client(self):
        import redis
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self) -> None:
        """SIGTERM (with ``--save ""`` nothing is written), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stop()
        if self in _redis_servers:
            _redis_servers.remove(self)


class Supervisor(threading.Thread):
    """Starts again any of the stack's processes (but the sandbox) that exited, as systemd would.
    Deliberate restarts take ``lock`` so the two never race."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True, name="supervisor")
        self.stack = stack
        self.lock = threading.RLock()
        self.events: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            with self.lock:
                if self._halt.is_set():
                    return
                for proc in list(self.stack.procs):
                    if proc.name.startswith("sandbox") or proc.alive():
                        continue
                    code = proc.popen.returncode
                    why = "killed by SIGKILL" if code == -signal.SIGKILL else f"exited with {code}"
                    tail = " | ".join(line.strip() for line in proc.tail(600).splitlines()[-2:])
                    try:
                        new = self.stack.respawn(proc)
                    except Exception as exc:  # the next round tries again
                        self.events.append(f"{proc.name} {why}; restart failed: {exc}")
                        continue
                    self.events.append(f"{proc.name} {why}, restarted as {new.name} (pid {new.pid})")
                    log(f"supervisor: {proc.name} {why} (last log: {tail[-200:]!r}); "
                        f"restarted as {new.name}")

    def stop(self) -> None:
        self._halt.set()
        with self.lock:
            pass
        self.join(5)


class DeliveryMonitor(threading.Thread):
    """Polls the outbox: the wall time the number of 'sent' calls last went up."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True, name="delivery-monitor")
        self.stack = stack
        self.sent = 0
        self.counts: dict = {}
        self.last_sent_at: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            try:
                counts = self.stack.outbox_counts()
            except Exception:
                continue
            self.counts = counts
            if counts.get("sent", 0) > self.sent:
                self.sent = counts["sent"]
                self.last_sent_at = time.time()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- the calls ---------------------------------------------------------------------------------

@dataclass
class Call:
    id: str
    kind: str  # "popup" (answered, with popup), "missed", "missed-ring", "out"
    phone: str
    new: bool


def make_calls(n: int, tag: int) -> list[Call]:
    calls = []
    for i in range(n):
        kind = ("popup", "popup", "missed", "out")[i % 4]
        if kind == "missed" and i % 8 == 2:
            kind = "missed-ring"
        known = (i % 8 == 0) or (i % 16 == 7)  # one popup call in four, one outgoing call in four
        phone = KNOWN_PHONE if known else f"7999{tag % 100:02d}{i:05d}"
        calls.append(Call(id=f"F{tag:04d}C{i:05d}{os.urandom(3).hex().upper()}", kind=kind, phone=phone,
                          new=not known))
    return calls


class Pushes:
    """Pushes the calls through the web app, paced over ``seconds``; ``copies`` of every push
    at once (three threads) for pushes-x3."""

    def __init__(self, stack: Stack, calls: list[Call], seconds: float, copies: int = 1):
        self.pusher = Pusher(stack.web_url)
        self.url = f"{stack.web_url}/pbx/demo/crm"
        self.calls = calls
        self.seconds = seconds
        self.copies = copies
        self.started = 0
        self.finished = 0
        self.retries = 0
        self.retry_reasons: Counter = Counter()
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(24, thread_name_prefix="call")
        self.copy_pool = ThreadPoolExecutor(24 * copies, thread_name_prefix="push") if copies > 1 else None
        self.futures = []
        self.t0 = 0.0
        self.ended_at: float | None = None
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop pushing (the run is being torn down): queued calls and retries give up."""
        self.cancelled.set()
        for future in self.futures:
            future.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.copy_pool:
            self.copy_pool.shutdown(wait=False, cancel_futures=True)

    def start(self) -> None:
        self.t0 = time.monotonic()
        step = self.seconds / max(1, len(self.calls))
        self.futures = [self.pool.submit(self._call, call, self.t0 + i * step)
                        for i, call in enumerate(self.calls)]

    def wait(self, timeout: float) -> None:
        done, not_done = wait_futures(self.futures, timeout)
        for future in done:
            future.result()  # re-raise a bug in the pushing code
        if not_done:
            raise TimeoutError(f"{len(not_done)} calls still being pushed after {timeout:.0f} s")
        self.pool.shutdown()
        if self.copy_pool:
            self.copy_pool.shutdown()

    def _call(self, call: Call, at: float) -> None:
        if self.cancelled.wait(max(0.0, at - time.monotonic())):
            return
        with self.lock:
            self.started += 1
        if call.kind == "popup":
            self.push(event_fields(call.id, "INCOMING", ext="101", phone=call.phone))
            time.sleep(0.15)
            self.push(event_fields(call.id, "ACCEPTED", ext="101", phone=call.phone))
            time.sleep(0.25)
            self.push(history_fields(call.id, phone=call.phone))
        elif call.kind in ("missed", "missed-ring"):
            if call.kind == "missed-ring":
                self.push(event_fields(call.id, "INCOMING", ext="101", phone=call.phone))
                time.sleep(0.3)
                self.push(event_fields(call.id, "CANCELLED", phone=call.phone))
            self.push(history_fields(call.id, phone=call.phone, status="missed", user="pbx", duration=0))
        else:
            self.push(history_fields(call.id, phone=call.phone, direction="out", duration=17))
        with self.lock:
            self.finished += 1
            if self.finished == len(self.calls):
                self.ended_at = time.time()  # the last push of the run was taken

    def push(self, fields: dict) -> None:
        if self.copies == 1:
            self._push_one(fields)
            return
        futures = [self.copy_pool.submit(self._push_one, fields) for _ in range(self.copies)]
        for future in futures:
            future.result()

    def _push_one(self, fields: dict, patience: float = 120) -> None:
        """POST the push; while the cabinet cannot take it (down, 5xx), send it again."""
        deadline = time.monotonic() + patience
        while True:
            try:
                response = self.pusher.session().post(self.url, data={"crm_token": DEMO_TOKEN, **fields},
                                                      timeout=30)
                if response.status_code == 200:
                    return
                if response.status_code < 500 and response.status_code != 429:
                    with self.lock:
                        self.refused.append(f"{fields['cmd']} {fields.get('type')} {fields['callid']}: "
                                            f"{response.status_code} {response.text[:200]}")
                    return
                problem = f"HTTP {response.status_code} {response.text[:80]!r}"
            except requests.RequestException as exc:
                problem = type(exc).__name__
                self.pusher._local.session = None  # a fresh connection next time
            with self.lock:
                self.retries += 1
                self.retry_reasons[problem] += 1
            if time.monotonic() > deadline or self.cancelled.is_set():
                with self.lock:
                    self.refused.append(f"{fields['cmd']} {fields.get('type')} {fields['callid']}: "
                                        f"gave up after {patience:.0f} s ({problem})")
                return
            time.sleep(0.3)


# -- faults ------------------------------------------------------------------------------------

@dataclass
class Run:
    mode: str
    scenario: str
    args: argparse.Namespace
    stack: Stack
    redis: PrivateRedis | None
    supervisor: Supervisor
    pushes: Pushes | None = None
    notes: list[str] = field(default_factory=list)
    fault_start: float = 0.0
    fault_end: float = 0.0
    redis_back: float | None = None  # wall time Redis came back (redis scenarios)

    def sandbox_alive(self) -> None:
        for proc in self.stack.procs:
            if proc.name.startswith("sandbox"):
                proc.check()

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(text)


def _requests_seen(run: Run) -> int:
    return run.stack.sandbox_requests()


def fault_none(run: Run) -> None:
    run.note("no fault")


def fault_redis_restart(run: Run) -> None:
    if run.mode == "production":
        run.redis.stop()
        run.note(f"private Redis (port {run.redis.port}) stopped with SIGTERM, nothing saved; "
                 f"down {run.args.redis_down:.0f} s while calls keep coming")
        time.sleep(run.args.redis_down)  # the mid-run moment: pushes arrive while Redis is away
        run.redis.start()
        run.redis_back = time.time()
        run.note("Redis started again, empty, on the same port")
    else:
        with run.supervisor.lock:
            (web,) = [p for p in run.stack.procs if p.name.startswith("web")]
            stopped = time.monotonic()
            new = run.stack.respawn(web)  # SIGTERM, then the same command on the same port and database
            run.redis_back = time.time()
        run.note(f"embedded: web process (its in-process Redis with it) stopped with SIGTERM and started "
                 f"again on the same database as {new.name}: {time.monotonic() - stopped:.1f} s without it")


def fault_flushall(run: Run) -> None:
    run.redis.client().flushall()
    run.redis_back = time.time()
    run.note("FLUSHALL on the private Redis")


def fault_lost_answers(run: Run) -> None:
    n = max(5, run.args.calls // 10)
    delayed = run.args.delayed_answers
    plan = []
    if delayed:
        plan += [dict(lose_answers_next=delayed, path_prefix="/api/v3/contractorHuman",
                      answer_delay=CLIENT_READ_TIMEOUT + 5),
                 dict(lose_answers_next=delayed, path_prefix="/api/v3/callInfo",
                      answer_delay=CLIENT_READ_TIMEOUT + 5)]
    # Checked in this order: todos and updates of a call by its id (callInfo/4…) before the
    # rest of callInfo (popup creates, bulk history, updates by providerId).
    plan += [dict(lose_answers_next=n, path_prefix="/api/v3/callInfo/4"),
             dict(lose_answers_next=n, path_prefix="/api/v3/callInfo"),
             dict(lose_answers_next=n, path_prefix="/api/v3/contractorHuman")]
    for body in plan:
        run.stack.sandbox_faults(method="POST", **body)
    total = sum(b["lose_answers_next"] for b in plan)
    run.note(f"sandbox loses the answers of the next {n} POSTs to /api/v3/callInfo/4… (todo creates, "
             f"updates by id), {n} other /api/v3/callInfo POSTs (creates, bulk history), {n} "
             f"/api/v3/contractorHuman creates" + (f"; before them {delayed} each of contractorHuman and "
                                                    f"callInfo answered only after {CLIENT_READ_TIMEOUT + 5} s "
                                                    f"(client read timeout {CLIENT_READ_TIMEOUT} s)" if delayed else ""))

    def used_up():
        return run.stack.sandbox_state()["lost_answers"] >= total
    try:
        wait_until(used_up, run.args.push_seconds + 60, "the lost answers to be used up", interval=0.5,
                   check=run.sandbox_alive)
    except TimeoutError:
        pass
    lost = run.stack.sandbox_state()["lost_answers"]
    run.note(f"{lost} of {total} answers lost" + ("" if lost >= total else " (the rest stayed armed)"))


def fault_worker_kill(run: Run) -> None:
    stack = run.stack
    stack.sandbox_faults(latency_ms=300)
    if run.mode == "production":
        from rq import Queue
        from rq.registry import StartedJobRegistry

        def running():
            return sum(len(StartedJobRegistry(queue=Queue(q, connection=stack.redis())))
                       for q in ("megaplan", "megaplan-live"))
        try:  # the mid-run moment: jobs in the middle of a Megaplan request
            wait_until(running, 15, "a job to be running", interval=0.05)
        except TimeoutError:
            run.note("no job was running when the workers were killed")
        with run.supervisor.lock:
            victims = list(stack.workers)
            for proc in victims:
                os.killpg(proc.pid, signal.SIGKILL)
            for proc in victims:
                proc.popen.wait(10)
        run.note(f"SIGKILL to {len(victims)} worker process groups (Megaplan answering in 300 ms, "
                 f"{running()} jobs were registered as running)")
        wait_until(lambda: all(p.alive() and p not in victims for p in stack.workers), 30,
                   "the supervisor to restart the workers", interval=0.05)
        stack.wait_workers_registered()
    else:
        time.sleep(1.0)  # the mid-run moment: the worker threads are in the middle of requests
        with run.supervisor.lock:
            (web,) = [p for p in stack.procs if p.name.startswith("web")]
            os.killpg(web.pid, signal.SIGKILL)
            web.popen.wait(10)
        run.note("SIGKILL to the web process group (the embedded workers are its threads; Megaplan "
                 "answering in 300 ms)")
        wait_until(lambda: any(p.name.startswith("web#") and p.alive() for p in stack.procs), 60,
                   "the supervisor to restart the web process", interval=0.05)
        with run.supervisor.lock:  # respawn returns once the web app answers
            pass
    stack.sandbox_faults(latency_ms=0)


def _fail_stretch(run: Run, status: int, retry_after: int | None) -> None:
    m = run.args.calls // 2 + 20
    before = _requests_seen(run)
    body = dict(fail_next=m, status=status)
    if retry_after is not None:
        body["retry_after"] = retry_after
    run.stack.sandbox_faults(**body)
    run.note(f"the next {m} Megaplan requests answer {status}"
             + (f" with Retry-After: {retry_after}" if retry_after is not None else ""))
    try:
        wait_until(lambda: _requests_seen(run) >= before + m, run.args.push_seconds + 120,
                   f"the {m} failures to be used up", interval=0.2, check=run.sandbox_alive)
    except TimeoutError:
        run.note(f"only {_requests_seen(run) - before} requests came during the stretch")


def fault_500(run: Run) -> None:
    _fail_stretch(run, 500, None)


def fault_429(run: Run) -> None:
    _fail_stretch(run, 429, 2)


def fault_latency(run: Run) -> None:
    run.stack.sandbox_faults(latency_ms=2000)
    run.note(f"Megaplan answers every request in 2 s for {run.args.latency_seconds:.0f} s")
    time.sleep(run.args.latency_seconds)  # the stretch itself
    run.stack.sandbox_faults(latency_ms=0)


def fault_x3(run: Run) -> None:
    run.note("every push of the run sent three times at once (three threads)")


FAULTS = {"none": fault_none, "redis-restart": fault_redis_restart, "flushall": fault_flushall,
          "lost-answers": fault_lost_answers, "worker-kill": fault_worker_kill, "megaplan-500": fault_500,
          "megaplan-429": fault_429, "latency": fault_latency, "pushes-x3": fault_x3}


# -- one run -----------------------------------------------------------------------------------

def tally(stack: Stack, calls: list[Call]) -> dict:
    state = stack.sandbox_state()
    ours = {c.id for c in calls}
    per_provider = Counter(str(c.get("providerId")) for c in state["calls"] if str(c.get("providerId")) in ours)
    our_calls = [c for c in state["calls"] if str(c.get("providerId")) in ours]
    call_ids = {str(c["id"]) for c in our_calls}
    new_phones = {c.phone for c in calls if c.new}

    def digits(value: str) -> str:
        d = re.sub(r"\D", "", value or "")
        return "7" + d[1:] if len(d) == 11 and d[0] == "8" else d
    per_phone = Counter()
    for contractor in state["contractors"]:
        for phone in {digits(i.get("value", "")) for i in contractor.get("contactInfo") or []
                      if i.get("type") == "phone"}:
            if phone in new_phones:
                per_phone[phone] += 1
    per_call_todos = Counter(str(t.get("call")) for t in state["todos"] if str(t.get("call")) in call_ids)
    open_popups = [c for c in our_calls if c.get("state") != "finished"]
    return {
        "lost": [cid for cid in ours if per_provider[cid] == 0],
        "dup_calls": sum(n - 1 for n in per_provider.values() if n > 1),
        "dup_call_ids": sorted(p for p, n in per_provider.items() if n > 1),
        "dup_clients": sum(n - 1 for n in per_phone.values() if n > 1),
        "dup_client_phones": sorted(p for p, n in per_phone.items() if n > 1),
        "clients_missing": len(new_phones - set(per_phone)),
        "dup_todos": sum(n - 1 for n in per_call_todos.values() if n > 1),
        "dup_todo_calls": sorted(c for c, n in per_call_todos.items() if n > 1),
        "calls_without_todo": len(call_ids - set(per_call_todos)),
        "open_popups": [(c.get("providerId"), c.get("state")) for c in open_popups],
        "lost_answers": state.get("lost_answers", 0),
    }


def outbox_rows(stack: Stack, calls: list[Call]) -> dict:
    """call id → state of its 'call' outbox row."""
    import sqlalchemy as sa
    with stack.engine().connect() as conn:
        rows = conn.execute(sa.text("SELECT call_id, state FROM megaplan_outbox WHERE kind = 'call'")).all()
    ours = {c.id for c in calls}
    return {cid: state for cid, state in rows if cid in ours}


def late_rows(stack: Stack, calls: list[Call]) -> list[str]:
    """Why calls are still waiting: their outbox rows, and the creates whose outcome is unknown."""
    import sqlalchemy as sa
    ours = {c.id for c in calls}
    out = []
    with stack.engine().connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT call_id, state, attempts, reason, last_error, next_retry_at FROM megaplan_outbox "
            "WHERE kind = 'call' AND state <> 'sent'")).all()
        for call_id, state, attempts, reason, error, retry_at in rows:
            if call_id in ours:
                out.append(f"outbox {call_id} {state} attempts={attempts} next_retry_at={retry_at} "
                           f"reason={reason!r} last_error={(error or '')[:160]!r}")
        intents = conn.execute(sa.text(
            "SELECT kind, key, busy_until, finished, created_at FROM megaplan_intent "
            "WHERE megaplan_id IS NULL")).all()
        for kind, key, busy, finished, created in intents:
            out.append(f"intent without a Megaplan id: {kind} {key} busy_until={busy} finished={finished} "
                       f"created_at={created}")
    missing = ours - set(outbox_rows(stack, calls))
    if missing:
        out.append(f"{len(missing)} calls have no outbox row: {sorted(missing)[:5]}")
    return out


def run_scenario(mode: str, scenario: str, args, tag: int) -> dict:
    row = {"mode": mode, "scenario": scenario, "calls": args.calls}
    if mode == "embedded" and scenario == "flushall":
        row["na"] = "nothing outside the web process can reach its in-process Redis"
        return row
    print(f"\n== {mode} / {scenario}: {args.calls} calls", flush=True)
    t_begin = time.monotonic()
    redis_server = None
    stack = None
    supervisor = None
    monitor = None
    pushes = None
    keep_logs = args.keep_logs
    try:
        env = {"MEGAPLAN_SWEEP_SECONDS": str(args.sweep)}
        if mode == "production":
            redis_server = PrivateRedis(Path(tempfile.mkdtemp(prefix="bench-faults-redis-")))
            redis_server.start()
            stack = Stack("production", extra_env=env, redis_server=redis_server.url)
        else:
            stack = Stack("embedded", extra_env=env)
        stack.start_sandbox()
        stack.start_web()
        stack.configure_demo(**SETTINGS)
        if mode == "production":
            stack.start_production_workers(sync_workers=1)
        supervisor = Supervisor(stack)
        supervisor.start()
        monitor = DeliveryMonitor(stack)
        monitor.start()
        calls = make_calls(args.calls, tag)
        run = Run(mode, scenario, args, stack, redis_server, supervisor)
        run.pushes = pushes = Pushes(stack, calls, args.push_seconds,
                                     copies=3 if scenario == "pushes-x3" else 1)
        log(f"stack up in {time.monotonic() - t_begin:.1f} s; pushing {len(calls)} calls over "
            f"{args.push_seconds:.0f} s")
        run.pushes.start()
        wait_until(lambda: run.pushes.started >= len(calls) // 3, args.push_seconds + 60,
                   "a third of the calls to be pushed", interval=0.02, check=run.sandbox_alive)
        run.fault_start = time.time()
        FAULTS[scenario](run)
        if scenario == "pushes-x3":
            run.pushes.wait(600)
            run.fault_start = time.time() - (time.monotonic() - run.pushes.t0)
        run.fault_end = time.time()
        run.pushes.wait(600)
        if scenario == "pushes-x3":
            run.fault_end = run.pushes.ended_at
        log(f"all {len(calls)} calls pushed; fault over "
            f"{max(0.0, run.pushes.ended_at - run.fault_end):.1f} s before the last push"
            if run.pushes.ended_at >= run.fault_end else
            f"all {len(calls)} calls pushed; the fault ended {run.fault_end - run.pushes.ended_at:.1f} s later")

        # Delivered: every call has its outbox row and none is pending (bounded).
        late = {}

        def settled():
            rows = outbox_rows(stack, calls)
            done = len(rows) == len(calls) and "pending" not in rows.values()
            if not done and "rows" not in late and time.time() > run.fault_end + 2 * args.sweep + 1:
                late["rows"] = late_rows(stack, calls)  # what still waits two sweeps after the fault
                late["at"] = time.time() - run.fault_end
            return done
        waited_from = time.monotonic()
        try:
            wait_until(settled, args.deadline, "every call's outbox row to be settled", interval=0.25,
                       check=run.sandbox_alive)
            complete = True
        except TimeoutError:
            complete = False
            run.note(f"NOT every call settled within {args.deadline:.0f} s")
        log(f"outbox settled after {time.monotonic() - waited_from:.1f} s of waiting" if complete else
            "deadline reached")
        # Let whatever is still in flight land (a stray create would show up as a duplicate).
        quiet_since = [time.monotonic(), _requests_seen(run)]

        def quiet():
            seen = _requests_seen(run)
            if seen != quiet_since[1]:
                quiet_since[:] = [time.monotonic(), seen]
            return not waiting_jobs() and time.monotonic() - quiet_since[0] > 1.5

        def waiting_jobs() -> dict:
            """Production: jobs queued or scheduled (a started one of a killed worker stays
            registered as started until RQ cleans it up: not counted)."""
            if mode != "production":
                return {}
            from rq import Queue
            from rq.registry import ScheduledJobRegistry
            try:
                out = {}
                for name in ("megaplan-live", "megaplan"):
                    q = Queue(name, connection=stack.redis())
                    if q.count or len(ScheduledJobRegistry(queue=q)):
                        out[name] = (q.count, len(ScheduledJobRegistry(queue=q)))
                return out
            except Exception as exc:
                return {"redis": repr(exc)}
        routes_before = stack.probe(since=1 << 40)["by_route"]
        try:
            wait_until(quiet, 45, "Megaplan requests to stop", interval=0.2)
        except TimeoutError:
            routes = stack.probe(since=1 << 40)["by_route"]
            moving = {r: n - routes_before.get(r, 0) for r, n in routes.items() if n != routes_before.get(r, 0)}
            run.note(f"still busy 45 s after the outbox settled: Megaplan requests meanwhile {moving}; "
                     f"jobs (queued, scheduled) {waiting_jobs()}")
        monitor.stop()
        rows = outbox_rows(stack, calls)
        counts = tally(stack, calls)
        states = Counter(rows.values())
        not_sent = len(calls) - states.get("sent", 0)
        row.update(counts)
        row.update({"not_sent": not_sent, "states": dict(states), "missing_rows": len(calls) - len(rows),
                    "complete": complete, "notes": run.notes, "retries": run.pushes.retries,
                    "retry_reasons": dict(run.pushes.retry_reasons),
                    "refused": run.pushes.refused, "restarts": list(supervisor.events)})
        last = monitor.last_sent_at
        row["delivered_within"] = None if (not complete or last is None or not_sent) else max(0.0, last - run.fault_end)
        if run.redis_back is not None and last is not None:
            row["after_redis"] = max(0.0, last - run.redis_back)
        row["seconds"] = time.monotonic() - t_begin
        if last is not None:
            row["after_last_push"] = last - run.pushes.ended_at
        if late:
            row["late"] = late
        bad = counts["lost"] or counts["dup_calls"] or counts["dup_clients"] or counts["dup_todos"] \
            or counts["open_popups"] or not_sent
        if bad:
            keep_logs = True
            row["errors"] = error_lines(stack)
        return row
    except BaseException as exc:
        keep_logs = True
        row["crash"] = f"{type(exc).__name__}: {exc}"
        if stack is not None:
            row["errors"] = error_lines(stack)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return row
    finally:
        if pushes is not None:
            pushes.cancel()
        if supervisor is not None:
            supervisor.stop()
        if monitor is not None and monitor.is_alive():
            monitor.stop()
        if stack is not None:
            if keep_logs:
                dest = LOG_KEEP_ROOT / f"{mode}-{scenario}-{os.getpid()}-{tag}"
                shutil.copytree(stack.tmp, dest, dirs_exist_ok=True)
                if redis_server is not None:
                    shutil.copytree(redis_server.tmp, dest / "redis", dirs_exist_ok=True)
                row["logs"] = str(dest)
            stack.close()
        if redis_server is not None:
            redis_server.close()
            shutil.rmtree(redis_server.tmp, ignore_errors=True)


_ERROR = re.compile(r"Traceback|ERROR|Error|error|exception|Exception|WARNING")


def error_lines(stack: Stack, limit: int = 25) -> list[str]:
    """Distinct error-looking lines of the stack's logs, with how often each came, by process."""
    out = []
    for path in sorted(stack.tmp.glob("*.log")):
        seen = Counter()
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if _ERROR.search(line):
                key = re.sub(r"\b[0-9a-f]{8,}\b|\d{4}-\d\d-\d\d[ T][\d:.,]+|\b\d+\b", "#", line.strip())[:220]
                seen[key] += 1
        for key, n in seen.most_common(limit):
            out.append(f"{path.stem}: {n}x {key}")
    return out


# -- report ------------------------------------------------------------------------------------

HEADER = (f"{'mode':<11}{'scenario':<15}{'calls':>6}{'lost':>6}{'dup CallInfo':>14}{'dup clients':>13}"
          f"{'dup todos':>11}{'open popups':>13}{'not sent':>10}{'push retries':>14}  delivered within")


def format_row(row: dict, sweep: int) -> str:
    head = f"{row['mode']:<11}{row['scenario']:<15}{row['calls']:>6}"
    if "na" in row:
        return head + f"{'n/a':>6}  ({row['na']})"
    if "crash" in row:
        return head + f"  CRASHED: {row['crash'][:160]}"
    within = "not all sent" if row["delivered_within"] is None else f"{row['delivered_within']:.1f} s"
    if "after_redis" in row and row["delivered_within"] is not None:
        goal = 2 * sweep
        within += (f" (of Redis back: {row['after_redis']:.1f} s, goal <= 2 sweeps = {goal} s: "
                   f"{'met' if row['after_redis'] <= goal else 'NOT met'})")
    return (head + f"{len(row['lost']):>6}{row['dup_calls']:>14}{row['dup_clients']:>13}{row['dup_todos']:>11}"
            f"{len(row['open_popups']):>13}{row['not_sent']:>10}{row['retries']:>14}  {within}")


def details(row: dict) -> list[str]:
    out = []
    if "na" in row:
        return out
    name = f"{row['mode']}/{row['scenario']}"
    if "crash" not in row:
        out.append(f"{name}: outbox {row['states']}" + (f", {row['missing_rows']} calls without a row"
                                                          if row['missing_rows'] else "")
                   + f"; new numbers without a client {row['clients_missing']}, CallInfo without a todo "
                     f"{row['calls_without_todo']}; answers lost by the sandbox {row['lost_answers']}; "
                     f"run {row['seconds']:.0f} s")
        if row.get("after_last_push") is not None:
            out.append(f"{name}: last call sent {row['after_last_push']:.1f} s after the last push")
        for note in row["notes"]:
            out.append(f"{name}: {note}")
        if row.get("late"):
            out.append(f"{name}: still waiting {row['late']['at']:.0f} s after the fault's end "
                       f"(two sweeps and a second):")
            for line in row["late"]["rows"][:12]:
                out.append(f"{name}:   {line}")
        if row["retries"]:
            out.append(f"{name}: {row['retries']} pushes sent again after the cabinet could not take them: "
                       + "; ".join(f"{n}x {why}" for why, n in Counter(row["retry_reasons"]).most_common(4)))
        for refused in row["refused"][:5]:
            out.append(f"{name}: push REFUSED: {refused}")
        for restart in row["restarts"]:
            out.append(f"{name}: supervisor: {restart}")
        if not row["restarts"] and row["scenario"] in ("redis-restart", "flushall") and row["mode"] == "production":
            out.append(f"{name}: supervisor: no process exited (web, workers and cron kept running "
                       f"and reconnected by themselves)")
        for key, label in (("lost", "lost"), ("dup_call_ids", "duplicated CallInfo"),
                           ("dup_client_phones", "duplicated clients"), ("dup_todo_calls", "calls with >1 todo"),
                           ("open_popups", "open popups")):
            if row.get(key):
                out.append(f"{name}: {label}: {row[key][:10]}")
    if row.get("logs"):
        out.append(f"{name}: logs kept in {row['logs']}")
    for line in row.get("errors", [])[:40]:
        out.append(f"{name}:   {line}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=250)
    parser.add_argument("--mode", choices=("production", "embedded", "both"), default="both")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--sweep", type=int, default=10, help="MEGAPLAN_SWEEP_SECONDS for cron and web")
    parser.add_argument("--push-seconds", type=float, default=None,
                        help="the calls are spread over this many seconds (default max(8, calls/20))")
    parser.add_argument("--redis-down", type=float, default=3, help="seconds Redis stays stopped")
    parser.add_argument("--latency-seconds", type=float, default=10, help="how long Megaplan answers in 2 s")
    parser.add_argument("--delayed-answers", type=int, default=2,
                        help="lost-answers: creates answered after the client's read timeout (0: none)")
    parser.add_argument("--deadline", type=float, default=240,
                        help="seconds to wait for every call to settle after the last push")
    parser.add_argument("--keep-logs", action="store_true", help=f"keep every run's logs under {LOG_KEEP_ROOT}")
    args = parser.parse_args()
    if args.push_seconds is None:
        args.push_seconds = max(8.0, args.calls / 20)
    scenarios = [s.strip() for s in args.only.split(",") if s.strip()] or SCENARIOS
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    modes = ["production", "embedded"] if args.mode == "both" else [args.mode]
    if not shutil.which("redis-server") and "production" in modes:
        parser.error("production mode needs redis-server on PATH (the script starts a private one)")

    started = time.monotonic()
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    print("bench/faults.py: the fault table of issue 22 (a fault in the middle of a run of calls)")
    print(f"{code_line()}; {os.cpu_count()} cores; redis-server {version[2] if len(version) > 2 else '?'} "
          f"(private, per run); sweep every {args.sweep} s; intent lease 60 s; {args.calls} calls over "
          f"{args.push_seconds:.0f} s per run")
    rows = []
    tag = 0
    for mode in modes:
        for scenario in scenarios:
            tag += 1
            row = run_scenario(mode, scenario, args, tag)
            rows.append(row)
            print(format_row(row, args.sweep), flush=True)
            for line in details(row):
                print("  " + line, flush=True)
    print("\n" + HEADER)
    for row in rows:
        print(format_row(row, args.sweep))
    print()
    for row in rows:
        for line in details(row):
            print(line)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
