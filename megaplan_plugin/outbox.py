"""The sweeper: hands the queue whatever the database holds that Redis does not."""
from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from rq import Worker
from rq.job import Job
from rq.exceptions import NoSuchJobError

from . import queue as queues
from .models import CallLog, DeferredEvent, utcnow

log = logging.getLogger(__name__)

# A queued call whose job is gone from Redis this long (flush, restart without persistence)
# is queued again; the sync job is idempotent, so an early resend costs a lookup, not a duplicate.
LOST_JOB_AFTER = timedelta(minutes=2)
# Workers heartbeat while a job runs; one silent this long is dead.
WORKER_SILENT_AFTER = timedelta(minutes=3)


_INSERT_CALL = insert(CallLog).returning(CallLog.id)


def insert_call(db, record: dict) -> int | None:
    """Put a finished call (a CallRecord as a dict) into the outbox; None if it is there already.

    One autocommitted Core insert on a connection of its own: a single statement is atomic
    anyway, and the ORM's unit of work, BEGIN/COMMIT round trips and the reload of the new row
    cost more than the 2 ms a hook has.
    """
    values = dict(account_id=record["account_id"], call_id=record["call_id"],
                  direction=record["direction"], client_phone=record["client_phone"],
                  virtual_number=record["virtual_number"], status=record["status"],
                  started_at=datetime.fromisoformat(record["started_at"]), record=record,
                  enqueued_at=utcnow())
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(_INSERT_CALL, values).scalar_one()
    except IntegrityError:
        return None


def sweep(db) -> dict:
    """Queue pending calls that are not in Redis and replay deferred live events."""
    counts = {"calls": 0, "events": 0, "stale_events": 0}
    conn = queues.connection()
    now = utcnow()
    rows = db.session.execute(db.select(CallLog).where(CallLog.state == CallLog.PENDING)).scalars()
    for row in rows:
        if row.enqueued_at is not None and (
                now - _aware(row.enqueued_at) < LOST_JOB_AFTER or _job_alive(conn, row.id)):
            continue
        try:
            queues.enqueue_sync(row.id, replace=True)
        except RedisError:
            log.warning("megaplan sweeper: Redis still unavailable")
            return counts
        row.enqueued_at = now
        counts["calls"] += 1
    db.session.commit()
    for event in db.session.execute(db.select(DeferredEvent)).scalars():
        if now - _aware(event.created_at) > queues.POPUP_MAX_AGE:
            counts["stale_events"] += 1  # the call's history still comes from call_ended
        else:
            try:
                queues.enqueue_live(event.account_id, event.call_id, event.hook, event.payload)
            except RedisError:
                return counts
            counts["events"] += 1
        db.session.delete(event)
    db.session.commit()
    return counts


def _job_alive(conn, row_id: int) -> bool:
    try:
        job = Job.fetch(queues.sync_job_id(row_id), connection=conn)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in queues.TERMINAL_STATUSES:
        return False
    if status == "started":
        return _worker_alive(conn, job.worker_name)
    return True  # queued, scheduled for a retry or deferred


def _worker_alive(conn, name: str | None) -> bool:
    """A started job whose worker was killed (SIGKILL, OOM, lost host) will never finish."""
    if not name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn)
    if worker is None:
        return False
    if worker.hostname == socket.gethostname() and worker.pid and not _pid_exists(worker.pid):
        return False
    heartbeat = worker.last_heartbeat
    return heartbeat is None or utcnow() - _aware(heartbeat) < WORKER_SILENT_AFTER


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aware(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
