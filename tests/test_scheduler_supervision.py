"""The scheduler (popup retries, writers coming back) runs where a supervisor sees it.

``rq worker --with-scheduler`` forks its scheduler: a ``kill -9`` of the worker leaves that child
holding RQ's scheduler lock, unsupervised. ``flask megaplan scheduler`` runs in the foreground
with a lock it renews every second and that runs out 10 s after it dies.
"""
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry

from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.scheduler import LOCK_KEY, LOCK_SECONDS, Scheduler

ROOT = Path(__file__).resolve().parent.parent


def _due_job(conn, seconds: float = 0.2):
    return queues.queue(queues.SYNC_QUEUE, conn).enqueue_in(timedelta(seconds=seconds), "os.getpid")


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_scheduler_moves_a_due_job_once_and_another_takes_over_when_it_lets_go(app):
    """On the app's Redis (fakeredis in the embedded mode, real Redis in CI)."""
    conn = app.extensions["megaplan"].redis
    first, second = Scheduler(conn), Scheduler(conn)
    job = _due_job(conn, 0)
    assert first.tick() == 1  # the first to tick holds the lock and moves the due job
    assert second.tick() == 0  # the lock is the first's: the second moves nothing
    assert queues.queue(queues.SYNC_QUEUE, conn).job_ids == [job.id]  # queued once
    assert ScheduledJobRegistry(queues.SYNC_QUEUE, connection=conn).get_job_ids() == []
    later = _due_job(conn, 0)
    first.release()
    assert second.tick() == 1  # the lock let go: the second takes over at its next tick
    assert queues.queue(queues.SYNC_QUEUE, conn).job_ids == [job.id, later.id]
    assert conn.ttl(LOCK_KEY.format(queues.SYNC_QUEUE)) <= LOCK_SECONDS


def _scheduler_process(app) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PBX_DATABASE_URL": app.config["PBX_DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"], "SECRET_KEY": app.config["SECRET_KEY"],
        "MEGAPLAN_ENCRYPTION_KEY": app.config["MEGAPLAN_ENCRYPTION_KEY"], "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen([str(flask), "--app", "host_stub", "megaplan", "scheduler"], env=env, cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (REDIS_URL): processes share it")
def test_a_retry_still_runs_after_the_scheduler_is_killed_and_started_again(
        app, integration, pbx, rq_worker, megaplan_sandbox):
    conn = app.extensions["megaplan"].redis
    lock = LOCK_KEY.format(queues.SYNC_QUEUE)
    first = _scheduler_process(app)
    second = None
    try:
        _wait(lambda: conn.get(lock) is not None or first.poll() is not None, 60, "the scheduler's lock")
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        # Megaplan fails the call's first try: the writer comes back in 5 s, a scheduled job.
        megaplan_sandbox.state.fail_next(1, 500, path_prefix="/api/v3/")
        call = pbx.new_call()
        call.history(status="Success", user="ivanov")
        rq_worker(scheduled=False)
        assert megaplan_sandbox.state.calls == {}
        assert len(ScheduledJobRegistry(queues.SYNC_QUEUE, connection=conn)) == 1

        os.killpg(first.pid, signal.SIGKILL)  # no chance to let go of its lock
        first.wait(10)
        assert conn.get(lock) is not None
        second = _scheduler_process(app)  # what the supervisor does
        # The second takes over when the dead one's lock runs out and moves the retry.
        _wait(lambda: queues.queue(queues.SYNC_QUEUE, conn).count == 1, LOCK_SECONDS + 30, "the retry in the queue")
        rq_worker(scheduled=False)
        assert [c["providerId"] for c in megaplan_sandbox.state.calls.values()] == [call.call_id]
        second.send_signal(signal.SIGTERM)  # a clean stop lets go of the lock at once
        second.wait(15)
        assert second.returncode == 0
        assert conn.get(lock) is None
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
