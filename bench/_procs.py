"""The README's production processes as subprocesses, for benchmarks (issues 16 and 17).

A :class:`Stack` is one cabinet as it runs in production or on the embedded defaults:

* ``Stack("production")``: a fresh PostgreSQL database (``bench_<pid>_<n>``, dropped at exit),
  Redis db 11 (flushed first and at exit), the Megaplan sandbox in its own process
  (``python -m host_stub.megaplan_sandbox``), the cabinet web app (``flask --app host_stub run``)
  and the README's ``rq worker`` / ``rq cron`` commands;
* ``Stack("embedded")``: the same web app without ``REDIS_URL`` on a SQLite file in a temporary
  folder, so its RQ workers, scheduler and cron are threads of the web process.

Every process gets a session (process group) of its own and is stopped by that group's id,
SIGTERM first, SIGKILL after a grace period; everything is torn down at exit, also on SIGTERM
or Ctrl-C. Logs go to files in the stack's temporary folder (printed when a process dies).
Waits are on conditions (:func:`wait_until`), never fixed sleeps where a condition exists.
"""
from __future__ import annotations

import atexit
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_SERVER = "redis://127.0.0.1:6379"
REDIS_DB = 11
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
WORKER_CLASS = "megaplan_plugin.delivery.worker.CabinetWorker"
SANDBOX_LOGIN = "admin@sandbox.megaplan.ru"
SANDBOX_PASSWORD = "sandbox-secret-42"
DEMO_TOKEN = "demo-crm-token"
BASE_SETTINGS = {"credential_id": "1", "active": "y", "default_responsible_id": "1000003"}
# Variables of the caller's shell that would change what the processes do.
_SCRUB = ("REDIS_URL", "RQ_REDIS_URL", "DATABASE_URL", "PBX_DATABASE_URL", "PBX_RECORDINGS_DIR", "MEGAPLAN_SANDBOX_PORT", "CABINET_APP",
          "SECRET_KEY", "MEGAPLAN_ENCRYPTION_KEY", "FLASK_APP", "FLASK_DEBUG", "CABINET_ROUTE_TIMEOUT_MS")

_stacks: list[Stack] = []
_counter = 0


# -- small helpers ----------------------------------------------------------------------------

def wait_until(predicate, timeout: float, what: str, interval: float = 0.02, check=None):
    """Poll ``predicate`` until it returns something truthy; ``check()`` may raise early
    (a process died). Raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples, points=(50, 90, 99)) -> dict:
    """Nearest-rank percentiles (ceil), in the samples' unit; plus max and n."""
    ordered = sorted(samples)
    out = {"n": len(ordered)}
    for p in points:
        out[f"p{p}"] = ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)] if ordered else float("nan")
    out["max"] = ordered[-1] if ordered else float("nan")
    return out


def csrf_token(html: str) -> str | None:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    return match.group(1) if match else None


def post_form(session: requests.Session, url: str, data: dict, page: str | None = None):
    """POST a form as a browser does: with the CSRF token of the page it came from."""
    form_page = session.get(page or url, timeout=30)
    if form_page.status_code != 200:
        raise RuntimeError(f"GET {page or url} for its form answered {form_page.status_code}:\n"
                           f"{form_page.text[-1500:]}")
    token = csrf_token(form_page.text)
    if token:
        data = {**data, "csrf_token": token}
    return session.post(url, data=data, allow_redirects=False, timeout=60)


def plugin_module(*names: str):
    """The first of ``names`` that imports: the plugin's modules move between packages
    (e.g. ``megaplan_plugin.account_settings`` → ``megaplan_plugin.web.settings_store``)."""
    import importlib
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but something it imports does not
    raise ModuleNotFoundError(f"none of {', '.join(names)}")


def settings_store():
    """The plugin's store of credentials and settings (what the settings page calls)."""
    return plugin_module("megaplan_plugin.web.settings_store", "megaplan_plugin.account_settings")


def machine(mode: str, stack: Stack | None = None) -> str:
    """One line: cores, CPU, Python, and the services the measured mode uses."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = " (" + line.split(":", 1)[1].strip() + ")"
                break
    except OSError:
        pass
    py = f"Python {platform.python_version()}"
    if mode == "embedded":
        services = f"SQLite {sqlite3.sqlite_version} + embedded (fakeredis, RQ threads in the web process)"
    else:
        services = f"{_pg_version()} + Redis {_redis_version()} (db {REDIS_DB})"
    return f"machine: {os.cpu_count()} cores{cpu}, {py}, {platform.system()} {platform.release()}; {services}"


def _pg_version() -> str:
    import psycopg
    try:
        with psycopg.connect(PG_SERVER + "/postgres", connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version.split()[0]}"
    except Exception as exc:  # the line is descriptive; never fail a run on it
        return f"PostgreSQL (unknown: {type(exc).__name__})"


def _redis_version() -> str:
    import redis
    try:
        return redis.Redis.from_url(REDIS_SERVER).info("server")["redis_version"]
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def code_line() -> str:
    """The commit measured, and whether the working tree differs from it (it is shared)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "megaplan_plugin", "host_stub"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "code: unknown"
    return f"code: {head}" + (f" + uncommitted changes in {len(dirty)} files of megaplan_plugin/, host_stub/"
                              if dirty else "")


# -- CPU accounting: where the cores went during a measurement --------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK, sum(values[:8]) / _TICK


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


class CpuMeter:
    """CPU seconds per process of a stack (plus the bench itself, the PostgreSQL backends of the
    stack's database and redis-server), and of the whole machine, between two snapshots."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.redis_pids = _pids_named("redis-server") if stack.mode == "production" else []

    def _pg_backends(self) -> list[int]:
        if self.stack.mode != "production":
            return []
        import psycopg
        try:
            with psycopg.connect(PG_SERVER + "/postgres", connect_timeout=3) as conn:
                return [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.stack.db_name,))]
        except Exception:
            return []

    def snapshot(self) -> dict:
        own = os.times()
        per = {p.name: _proc_cpu(p.pid) for p in self.stack.procs}
        per["bench"] = own.user + own.system
        if self.stack.mode == "production":
            backends = self._pg_backends()
            per["postgres"] = {pid: _proc_cpu(pid) for pid in backends}
            per["redis"] = sum(_proc_cpu(pid) for pid in self.redis_pids)
        busy, total = _machine_busy()
        return {"at": time.monotonic(), "per": per, "busy": busy, "total": total}

    @staticmethod
    def between(a: dict, b: dict) -> dict:
        """Cores used (CPU seconds / wall seconds) per component; 'others' is the rest of the machine."""
        wall = max(b["at"] - a["at"], 1e-9)
        used = {}
        for name, value in b["per"].items():
            before = a["per"].get(name)
            if isinstance(value, dict):  # PostgreSQL backends: only those alive at both ends
                before = before or {}
                used[name] = sum(v - before[pid] for pid, v in value.items() if pid in before) / wall
            elif before is not None:
                used[name] = (value - before) / wall
        ours = sum(used.values())
        machine = (b["busy"] - a["busy"]) / wall
        return {"wall": wall, "cores": used, "ours": ours, "machine": machine,
                "others": max(0.0, machine - ours)}

    @staticmethod
    def describe(usage: dict, group=None) -> str:
        """'cores busy 1.93 of 2: worker-1 0.61, sandbox 0.25, …; other processes 0.40'."""
        cores = dict(usage["cores"])
        if group:
            for label, prefix in group.items():
                members = [k for k in cores if k.startswith(prefix)]
                if len(members) > 1:
                    cores[label] = sum(cores.pop(k) for k in members)
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cores.items(), key=lambda kv: -kv[1]) if v >= 0.01)
        return (f"cores busy {usage['machine']:.2f} of {os.cpu_count()}: {parts}; "
                f"other processes on the machine {usage['others']:.2f}")


# -- processes --------------------------------------------------------------------------------

class Proc:
    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM to the process group we started, then SIGKILL to what is left of it."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the group may hold children (work horses)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


class Stack:
    """One cabinet: database, Redis (production), sandbox, web app, workers, cron."""

    def __init__(self, mode: str = "production", *, route_timeout_ms: int | None = None,
                 extra_env: dict | None = None, redis_server: str | None = None):
        """``redis_server`` (production): a Redis of the caller's instead of the shared
        ``REDIS_SERVER`` (e.g. a private ``redis-server`` that a fault run restarts)."""
        global _counter
        assert mode in ("production", "embedded")
        _counter += 1
        self.mode = mode
        self.procs: list[Proc] = []
        self.workers: list[Proc] = []
        self._all_procs: list[Proc] = []  # every process ever started, respawned ones too
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-"))
        self.sandbox_url: str | None = None
        self.web_url: str | None = None
        self._engine = None
        self._app = None
        self._closed = False
        self.db_name = None
        _stacks.append(self)
        from cryptography.fernet import Fernet
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update({
            "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
            "PYTHONUNBUFFERED": "1",
            "CABINET_APP": "host_stub:create_app",
            "SECRET_KEY": os.urandom(24).hex(),
            "MEGAPLAN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MEGAPLAN_ALLOW_HTTP": "1",
            "MEGAPLAN_SANDBOX_PORT": "0",  # the sandbox runs in its own process
            "CABINET_DEMO_CRM_TOKEN": DEMO_TOKEN,
            "PBX_DATABASE_URL": f"sqlite:///{self.tmp / 'pbx.sqlite3'}",  # the stack's own PBX
            "PBX_RECORDINGS_DIR": str(self.tmp / "pbx-recordings"),
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        })
        if route_timeout_ms is not None:
            env["CABINET_ROUTE_TIMEOUT_MS"] = str(route_timeout_ms)
        env.update(extra_env or {})
        if mode == "production":
            self.db_name = f"bench_{os.getpid()}_{_counter}"
            self.database_url = f"{PG_SERVER}/{self.db_name}"
            self.redis_url = f"{redis_server or REDIS_SERVER}/{REDIS_DB}"
            self._create_database()
            self.redis().flushdb()
            env.update({"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url})
        else:
            self.database_url = f"sqlite:///{self.tmp / 'cabinet.sqlite3'}"
            self.redis_url = None
            env["DATABASE_URL"] = self.database_url
        self.env = env

    # -- services -------------------------------------------------------------------------
    def _create_database(self) -> None:
        import psycopg
        with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def _drop_database(self) -> None:
        import psycopg
        with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def redis(self):
        import redis
        return redis.Redis.from_url(self.redis_url)

    def engine(self):
        """SQLAlchemy engine on the stack's database, for the bench's own reads and writes."""
        if self._engine is None:
            import sqlalchemy as sa
            from host_stub.config import _database_url
            self._engine = sa.create_engine(_database_url(self.database_url, None))
        return self._engine

    def scalar(self, sql: str, **params):
        import sqlalchemy as sa
        with self.engine().connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def outbox_counts(self) -> dict:
        """{state: rows} of finished calls in the outbox (megaplan_outbox, kind 'call')."""
        import sqlalchemy as sa
        with self.engine().connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT state, count(*) FROM megaplan_outbox WHERE kind = 'call' GROUP BY state")).all()
        return {state: n for state, n in rows}

    def app(self):
        """A cabinet app in the bench process on the stack's database and Redis (no threads)."""
        if self._app is None:
            from host_stub import create_app
            from host_stub.config import _database_url
            self._app = create_app({
                "SQLALCHEMY_DATABASE_URI": _database_url(self.database_url, None),
                "PBX_DATABASE_URL": self.env["PBX_DATABASE_URL"], "REDIS_URL": self.redis_url,
                "PBX_RECORDINGS_DIR": self.env["PBX_RECORDINGS_DIR"], "SECRET_KEY": self.env["SECRET_KEY"],
                "MEGAPLAN_ENCRYPTION_KEY": self.env["MEGAPLAN_ENCRYPTION_KEY"],
                "MEGAPLAN_ALLOW_HTTP": True, "MEGAPLAN_EMBEDDED_WORKER": False,
                "MEGAPLAN_SANDBOX_PORT": 0, "CABINET_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                "CABINET_ROUTE_TIMEOUT_MS": int(self.env.get("CABINET_ROUTE_TIMEOUT_MS", "1000")),
            })
        return self._app

    # -- processes ------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict | None = None) -> Proc:
        proc = Proc(name, argv, env or self.env, self.tmp)
        self.procs.append(proc)
        self._all_procs.append(proc)
        return proc

    def check(self) -> None:
        for proc in self.procs:
            proc.check()

    def start_sandbox(self, latency_ms: float = 0) -> str:
        """``python -m host_stub.megaplan_sandbox`` on a free port; returns its URL."""
        port = free_port()
        proc = self._start("sandbox", [sys.executable, "-m", "host_stub.megaplan_sandbox",
                                       "--port", str(port), "--latency-ms", str(latency_ms)])
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url + "/_sandbox/probe"), 30, "the sandbox to listen", check=proc.check)
        self.sandbox_url = url
        return url

    def start_web(self) -> str:
        """``flask --app host_stub run`` (threaded werkzeug server) on a free port."""
        port = free_port()
        proc = self._start("web", [str(BIN / "flask"), "--app", "host_stub", "run",
                                   "--host", "127.0.0.1", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url + "/login"), 60, "the web app to listen", interval=0.05,
                   check=proc.check)
        self.web_url = url
        return url

    def respawn(self, proc: Proc, wait: bool = True) -> Proc:
        """Start ``proc``'s command again, as a supervisor does when a process exits (stopped
        first if it still runs). Same argv (so the web app keeps its port), a log file of its
        own (``web#2.log``); it takes the old one's place in ``procs`` / ``workers``. With
        ``wait``, the web app is waited for until it answers."""
        proc.stop()
        base = proc.name.split("#")[0]
        n = 1 + sum(1 for p in self._all_procs if p.name.split("#")[0] == base)
        new = Proc(f"{base}#{n}", proc.argv, self.env, self.tmp)
        self._all_procs.append(new)
        for group in (self.procs, self.workers):
            if proc in group:
                group[group.index(proc)] = new
        if wait and base == "web":
            wait_until(lambda: _answers(self.web_url + "/login"), 60, "the web app to listen again",
                       interval=0.05, check=new.check)
        return new

    def start_worker(self, queues=("megaplan-live", "megaplan")) -> Proc:
        """The README's ``rq worker -w …CabinetWorker <queues>``."""
        assert self.mode == "production"
        argv = [str(BIN / "rq"), "worker", "-w", WORKER_CLASS]
        proc = self._start(f"worker-{len(self.workers) + 1}", argv + list(queues))
        self.workers.append(proc)
        return proc

    def start_scheduler(self) -> Proc:
        """The README's ``flask --app host_stub megaplan scheduler`` (retries, writers coming back)."""
        assert self.mode == "production"
        return self._start("scheduler", [str(BIN / "flask"), "--app", "host_stub", "megaplan", "scheduler"])

    def start_cron(self) -> Proc:
        """The README's ``rq cron megaplan_plugin.delivery.cron_config``."""
        assert self.mode == "production"
        return self._start("cron", [str(BIN / "rq"), "cron", "megaplan_plugin.delivery.cron_config"])

    def start_production_workers(self, sync_workers: int = 1, live_worker: bool = True,
                                 cron: bool = True) -> None:
        """README: a worker on both queues (+ more like it), one for popups, the scheduler, cron."""
        for _ in range(sync_workers):
            self.start_worker()
        self.start_scheduler()
        if live_worker:
            self.start_worker(queues=("megaplan-live",))
        if cron:
            self.start_cron()
        self.wait_workers_registered()

    def wait_workers_registered(self) -> None:
        wait_until(lambda: {w.pid for w in self.workers} <= set(self.rq_workers()), 60,
                   "the rq workers to register", interval=0.05, check=self.check)

    def rq_workers(self) -> dict:
        """pid → rq Worker (as registered in Redis) for the workers this stack started."""
        from rq import Worker
        ours = {w.pid for w in self.workers}
        return {w.pid: w for w in Worker.all(connection=self.redis()) if w.pid in ours}

    def jobs_done_per_worker(self) -> dict:
        return {pid: w.successful_job_count + w.failed_job_count for pid, w in self.rq_workers().items()}

    def stop_worker(self, proc: Proc) -> None:
        proc.stop()
        self.workers.remove(proc)
        self.procs.remove(proc)

    def queues_idle(self) -> bool:
        """Production: no job queued, running or scheduled in the plugin's queues."""
        from rq import Queue
        from rq.registry import ScheduledJobRegistry, StartedJobRegistry
        conn = self.redis()
        for name in ("megaplan-live", "megaplan"):
            q = Queue(name, connection=conn)
            if q.count or len(StartedJobRegistry(queue=q)) or len(ScheduledJobRegistry(queue=q)):
                return False
        return True

    # -- the cabinet over HTTP -----------------------------------------------------------------
    def login(self, account: str = "demo", password: str = "demo") -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        response = post_form(session, self.web_url + "/login", {"login": account, "password": password})
        if response.status_code != 302:
            raise RuntimeError(f"login as {account} failed: {response.status_code}")
        return session

    def configure_demo(self, **settings) -> requests.Session:
        """As an admin would: log in as demo/demo, «Подключить» the plugin, add the sandbox's
        credentials, save the settings active with the default responsible."""
        session = self.login()
        self.cabinet = session
        response = post_form(session, self.web_url + "/plugins/", {"key": "megaplan", "enable": "y"})
        _expect_redirect(response, "enable the plugin")
        response = post_form(session, self.web_url + "/plugins/megaplan/credentials/new", {
            "title": "Песочница", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD,
            "domain": self.sandbox_url})
        _expect_redirect(response, "add the sandbox credentials")
        self.save_settings(**settings)
        return session

    def save_settings(self, **options) -> None:
        """Save /plugins/megaplan/ with BASE_SETTINGS and ``options`` (None leaves a field out;
        check boxes not named are off, as in a browser)."""
        data = {k: v for k, v in {**BASE_SETTINGS, **options}.items() if v is not None}
        response = post_form(self.cabinet, self.web_url + "/plugins/megaplan/", data)
        _expect_redirect(response, "save the settings")

    # -- the sandbox in its process ---------------------------------------------------------------
    def probe(self, since: int = 0) -> dict:
        return requests.get(f"{self.sandbox_url}/_sandbox/probe", params={"since": since}, timeout=30).json()

    def sandbox_requests(self) -> int:
        return self.probe(since=1 << 40)["requests"]

    def sandbox_state(self) -> dict:
        return requests.get(f"{self.sandbox_url}/_sandbox/state", timeout=60).json()

    def sandbox_faults(self, **body) -> None:
        requests.post(f"{self.sandbox_url}/_sandbox/faults", json=body, timeout=30).raise_for_status()

    # -- teardown --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.procs):  # workers and cron before the web app and the sandbox
            proc.stop()
        if self._app is not None:
            try:
                from host_stub.db import db
                with self._app.app_context():
                    db.session.remove()
                    db.engine.dispose()
                state = self._app.extensions.get("megaplan")
                if state is not None and state.side_engine is not None:
                    state.side_engine.dispose()
            except Exception:
                pass
        if self._engine is not None:
            self._engine.dispose()
        if self.mode == "production":
            try:
                self._drop_database()
            except Exception as exc:
                print(f"warning: could not drop database {self.db_name}: {exc}", file=sys.stderr)
            try:
                self.redis().flushdb()
            except Exception:
                pass
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"logs of the {self.mode} stack kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Pusher:
    """The PBX: form-encoded pushes to ``POST /pbx/<account>/crm``, one HTTP session per thread."""

    def __init__(self, web_url: str):
        self.web_url = web_url
        self._local = threading.local()

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def push(self, account: str = "demo", crm_token: str = DEMO_TOKEN, **fields) -> dict:
        response = self.session().post(f"{self.web_url}/pbx/{account}/crm",
                                       data={"crm_token": crm_token, **fields}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"push {fields.get('cmd')} answered {response.status_code}: {response.text[:300]}")
        return response.json()


def history_fields(call_id: str, phone: str = "79161234567", status: str = "Success",
                   user: str = "ivanov", direction: str = "in", duration: int = 42,
                   diversion: str = "74950000001") -> dict:
    """A ``cmd=history`` push as the PBX sends it (see host_stub.testing.PbxCall.history)."""
    from datetime import datetime, timezone
    return {"cmd": "history", "type": direction, "status": status, "phone": phone,
            "diversion": diversion, "user": user, "callid": call_id,
            "start": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), "duration": str(duration),
            "link": f"https://records.example/{call_id}.mp3" if status == "Success" else ""}


def event_fields(call_id: str, event_type: str, user: str = "ivanov", phone: str = "79161234567",
                 diversion: str = "74950000001", direction: str = "in", ext: str = "") -> dict:
    """A ``cmd=event`` push (INCOMING, ACCEPTED, …) as in host_stub.testing.PbxCall."""
    fields = {"cmd": "event", "type": event_type, "user": user, "direction": direction,
              "phone": phone, "diversion": diversion, "callid": call_id}
    if ext:
        fields["ext"] = ext
    return fields


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def _expect_redirect(response, what: str) -> None:
    if response.status_code != 302:
        raise RuntimeError(f"could not {what}: HTTP {response.status_code}\n{response.text[-1500:]}")


# -- teardown at exit, also on SIGTERM and Ctrl-C ---------------------------------------------

def close_all() -> None:
    for stack in reversed(_stacks):
        try:
            stack.close()
        except Exception as exc:
            print(f"warning: teardown of the {stack.mode} stack failed: {exc}", file=sys.stderr)


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(close_all)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_sigterm)
