"""The sweeper: hands the queue whatever the database holds that Redis does not."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from rq.job import Job
from rq.exceptions import NoSuchJobError

from . import queue as queues
from .models import CallLog, DeferredEvent, utcnow

log = logging.getLogger(__name__)

# A queued call whose job is gone from Redis this long (flush, restart without persistence)
# is queued again; the sync job is idempotent, so an early resend costs a lookup, not a duplicate.
LOST_JOB_AFTER = timedelta(minutes=2)


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
            queues.enqueue_sync(row.id)
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
    return job.get_status(refresh=False) not in queues.TERMINAL_STATUSES


def _aware(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
