"""A real `rq worker` process SIGKILLed in the middle of a sync job loses nothing."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_stub.db import db
from megaplan_plugin.models import OutboxEntry
from rq.registry import StartedJobRegistry

from megaplan_plugin.delivery import queues

ROOT = Path(__file__).resolve().parent.parent

# fakeredis serves no other process (CONTRACT §8): this needs the real Redis CI runs with.
pytestmark = [pytest.mark.usefixtures("integration"),
              pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (REDIS_URL)")]


def _worker_env(app) -> dict:
    env = dict(os.environ)
    env.update({
        "CABINET_APP": "host_stub:create_app",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PBX_DATABASE_URL": app.config["PBX_DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "MEGAPLAN_ENCRYPTION_KEY": app.config["MEGAPLAN_ENCRYPTION_KEY"],
        "MEGAPLAN_ALLOW_HTTP": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_sigkilled_worker_mid_job_loses_and_duplicates_nothing(pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.set_latency(1500)  # the job sits inside a Megaplan request
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    rq_bin = Path(sys.executable).with_name("rq")
    env = _worker_env(app)
    env["FLASK_APP"] = env.pop("CABINET_APP")  # Flask's own name for the app serves as well
    worker = subprocess.Popen(
        [str(rq_bin), "worker", "-w", "megaplan_plugin.delivery.worker.CabinetWorker", "--url",
         app.config["REDIS_URL"], "megaplan"],
        env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while megaplan_sandbox.state.request_count(path_prefix="/api/v3/callInfo") == 0:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never reached Megaplan"
            time.sleep(0.05)
        # A forking worker puts its work horse in a session of its own: kill it by pid too.
        for pid in _children(worker.pid):
            os.kill(pid, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    megaplan_sandbox.state.set_latency(0)
    time.sleep(1.6)  # let the request the horse left behind finish on the sandbox side

    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry)).scalar_one()
        assert row.state == "pending"
    # RQ's own cleanup retries the abandoned job once its execution's lease ran out (an hour
    # from now stands in for the wait); the sweep runs this cleanup on its schedule.
    conn = app.extensions["megaplan"].redis
    registry = StartedJobRegistry(queues.SYNC_QUEUE, connection=conn)
    assert len(registry.get_expired_job_ids(time.time() + 3600)) == 1
    registry.cleanup(time.time() + 3600)
    # The dead writer's account lock runs out (a minute), as does its intent's lease: then
    # the next writer (the sweep wakes one) looks the call up before creating anything.
    conn.delete(queues.writer_lock_key("demo"))
    rq_worker()
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry)).scalar_one()
        assert row.state == "sent"
    assert [c["providerId"] for c in megaplan_sandbox.state.calls.values()] == [call.call_id]


# slow: a plain rq worker (not ours) may take up to a minute to stop, waiting out RQ's 60 s
# wait on its command channel (redis-py 8's stop(); CabinetWorker waits 1 s). So once it has
# failed the job it is stopped, rather than waited for: its verdict is what is under test.
@pytest.mark.slow
def test_a_plain_rq_worker_refuses_the_plugins_jobs_naming_the_right_command(pbx, app, megaplan_sandbox):
    from rq.registry import FailedJobRegistry

    from megaplan_plugin.delivery.outbox import sweep
    pbx.new_call().history(status="Success", user="ivanov")
    rq_bin = Path(sys.executable).with_name("rq")
    conn = app.extensions["megaplan"].redis
    failed = FailedJobRegistry(queues.SYNC_QUEUE, connection=conn)
    worker = subprocess.Popen([str(rq_bin), "worker", "--burst", "--url", app.config["REDIS_URL"], "megaplan"],
                              env=_worker_env(app), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not failed.get_job_ids() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if worker.poll() is None:
        worker.kill()
    output = worker.communicate(timeout=30)[0].decode()
    assert len(failed.get_job_ids()) == 1, output[-2000:]
    # what the worker said: its log when it got that far, and the job's own record of it
    job = queues.queue(queues.SYNC_QUEUE, conn).fetch_job(failed.get_job_ids()[0])
    result = job.latest_result()
    output += result.exc_string if result is not None else (job.exc_info or "")
    assert "WrongWorker" in output and "megaplan_plugin.delivery.worker.CabinetWorker" in output
    assert megaplan_sandbox.state.calls == {}  # nothing half-done
    with app.app_context():
        assert db.session.execute(db.select(OutboxEntry)).scalar_one().state == "pending"
        # The failed writer's wake flag does not hold the account back: the sweep replaces it.
        assert sweep(db)["accounts"] == 1
    assert queues.queue(queues.SYNC_QUEUE, conn).count == 1


def test_megaplans_500s_are_one_warning_line_each_and_no_traceback(pbx, app, megaplan_sandbox):
    megaplan_sandbox.state.fail_next(50, status=500)
    call = pbx.new_call()
    call.ring("ivanov")                          # a popup job: it raises, RQ retries it
    call.history(status="Success", user="ivanov")  # the writer: it records, pauses
    rq_bin = Path(sys.executable).with_name("rq")
    result = subprocess.run(
        [str(rq_bin), "worker", "--burst", "-w", "megaplan_plugin.delivery.worker.CabinetWorker",
         "--url", app.config["REDIS_URL"], "megaplan-live", "megaplan"],
        env=_worker_env(app), cwd=ROOT, capture_output=True, timeout=120)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert "megaplan: job" in output and "live_event) failed, 2 retries left: MegaplanTransientError" in output
    assert "attempt 1 failed: внутренняя ошибка Мегаплана (500)" in output
    with app.app_context():
        assert db.session.execute(db.select(OutboxEntry)).scalar_one().state == "pending"
