"""The embedded defaults (no REDIS_URL) are a product too: they retry, schedule and exit."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_stub.db import db
from megaplan_plugin.models import OutboxEntry

ROOT = Path(__file__).resolve().parents[1]
FLASK = Path(sys.executable).with_name("flask")


@pytest.fixture
def app_config():
    # Embedded even in CI: no Redis URL, the worker, scheduler and cron threads running.
    return {"REDIS_URL": None, "MEGAPLAN_EMBEDDED_WORKER": True}


def _wait_for(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


@pytest.mark.slow
def test_megaplan_down_for_20_seconds_during_10_calls_all_arrive_once_without_help(
        app, pbx, integration, megaplan_sandbox):
    assert app.extensions["megaplan"].embedded
    megaplan_sandbox.state.outage(20)
    recovered_at = time.monotonic() + 20
    ids = []
    for n in range(10):
        call = pbx.new_call(phone=f"7916777{n:04d}")
        call.ring("ivanov")
        call.history(status="Success", user="ivanov")
        ids.append(call.call_id)

    def all_sent():
        with app.app_context():
            states = db.session.execute(db.select(OutboxEntry.state).filter_by(kind=OutboxEntry.CALL)).scalars()
            return set(states) == {"sent"}
    assert _wait_for(all_sent, timeout=recovered_at - time.monotonic() + 60), "not all calls arrived"
    assert time.monotonic() - recovered_at < 60
    assert sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values()) == sorted(ids)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MEGAPLAN_SANDBOX_PORT")}
    env.update(extra)
    return env


@pytest.mark.parametrize("mode", ["embedded", "redis"])
@pytest.mark.parametrize("args", [["megaplan", "--help"], ["megaplan", "resend"],
                                  ["megaplan", "reconcile"]])
def test_every_cli_command_exits_when_done(mode, args):
    if mode == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    env = _env(**({"REDIS_URL": os.environ["REDIS_URL"]} if mode == "redis" else {}))
    result = subprocess.run([str(FLASK), "--app", "host_stub", *args], cwd=ROOT, env=env,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-2000:]


def _signals_as_in_a_terminal() -> None:
    """A shell starts background jobs (``cmd &``) with SIGINT and SIGQUIT ignored, and a
    test runner started so passes that on: the server would then rightly ignore the Ctrl-C
    this test sends. The test is about a server started from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    """The signal lines of /proc/<pid>/status (every thread's, for blocked masks)."""
    try:
        lines = []
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            status = (task / "status").read_text().splitlines()
            lines.append(task.name + ": " + " ".join(
                line.replace("\t", "") for line in status
                if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))))
        return "; ".join(lines)
    except OSError as exc:
        return f"unreadable ({exc})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_demo_server_stops_on_a_signal_and_leaves_no_process_behind(sig, tmp_path):
    port = _free_port()
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [str(FLASK), "--app", "host_stub", "run", "--port", str(port)], cwd=ROOT,
        env=_env(MEGAPLAN_SANDBOX_PORT=str(_free_port()), MEGAPLAN_ALLOW_HTTP="1",
                 PYTHONFAULTHANDLER="1"),
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        preexec_fn=_signals_as_in_a_terminal)
    try:
        def serving():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return server.poll() is not None
        assert _wait_for(serving, 30) and server.poll() is None
        before = _signal_state(server.pid)
        server.send_signal(sig)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            # Keep the process's signal masks before and after, and every thread's stack
            # (faulthandler, on SIGABRT), for whoever meets this next.
            after = _signal_state(server.pid)
            server.send_signal(signal.SIGABRT)
            server.wait(5)
            pytest.fail(f"the server did not stop; signals before {before}, after {after}; "
                        "its threads:\n" + log.read_text()[-6000:])
        with pytest.raises(ProcessLookupError):
            os.killpg(server.pid, 0)  # no process of its group is left (no forked scheduler)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def test_workers_take_the_cabinet_app_from_cabinet_app_or_else_flasks_own_flask_app(monkeypatch):
    from megaplan_plugin.config import ConfigError
    from megaplan_plugin.delivery import worker
    monkeypatch.delenv("CABINET_APP", raising=False)
    monkeypatch.delenv("FLASK_APP", raising=False)
    with pytest.raises(ConfigError, match="CABINET_APP.*FLASK_APP"):
        worker.app_factory_path()
    monkeypatch.setenv("FLASK_APP", "host_stub")
    assert worker.app_factory_path() == "host_stub"
    monkeypatch.setenv("CABINET_APP", "host_stub:create_app")
    assert worker.app_factory_path() == "host_stub:create_app"  # the plugin's own name wins
