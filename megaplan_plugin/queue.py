"""Queues, job ids and the retry policy; the Redis connection the plugin works with."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from flask import current_app
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

LIVE_QUEUE = "megaplan-live"
SYNC_QUEUE = "megaplan"
QUEUES = (LIVE_QUEUE, SYNC_QUEUE)

# A popup a minute late is noise: live jobs expire in the queue and are dropped when stale.
POPUP_MAX_AGE = timedelta(seconds=60)
# Megaplan outages are usually minutes; this backoff spans about an hour before a call is
# left "failed" for the sweeper and the journal's «Повторить».
SYNC_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 120, 300, 600, 1200])
LIVE_RETRY = Retry(max=2, interval=[1, 3])
# Hooks run on the host's request thread with a 2 ms budget: a dead Redis must fail fast.
REDIS_SOCKET_TIMEOUT = 0.5
TERMINAL_STATUSES = ("finished", "failed", "stopped", "canceled")


def connect(url: str | None) -> redis.Redis:
    if url:
        # No client-side retries either: the outbox is the retry, and the PBX is waiting.
        return redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT,
                                    socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
                                    retry=RedisRetry(NoBackoff(), 0))
    import fakeredis
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def connection() -> redis.Redis:
    return current_app.extensions["megaplan"].redis


def queue(name: str, conn: redis.Redis | None = None) -> Queue:
    return Queue(name, connection=conn or connection())


def live_job_id(account_id: str, call_id: str, hook: str, login: str | None) -> str:
    # RQ allows only [A-Za-z0-9_-] in ids, and PBX call ids and logins carry anything.
    key = "\0".join((account_id, call_id, hook, login or ""))
    return "megaplan-live-" + hashlib.sha1(key.encode()).hexdigest()


def route_job_id(account_id: str, phone: str) -> str:
    return "megaplan-route-" + hashlib.sha1(f"{account_id}\0{phone}".encode()).hexdigest()


def sync_job_id(call_log_id: int) -> str:
    return f"megaplan-call-{call_log_id}"


def enqueue_live(account_id: str, call_id: str, hook: str, payload: dict) -> None:
    from .jobs import live_event
    login = (payload.get("user") or {}).get("login")
    try:
        queue(LIVE_QUEUE).enqueue(
            live_event, account_id, hook, payload,
            job_id=live_job_id(account_id, call_id, hook, login), unique=True,
            ttl=int(POPUP_MAX_AGE.total_seconds()), result_ttl=60, failure_ttl=3600,
            retry=LIVE_RETRY)
    except DuplicateJobError:
        pass  # the PBX repeated the push: the popup is already on its way


def enqueue_store(record: dict) -> None:
    """A finished call the database refused: the job stores it once the database is back."""
    from .jobs import store_call
    key = "\0".join((record["account_id"], record["call_id"]))
    try:
        queue(SYNC_QUEUE).enqueue(
            store_call, record, job_id="megaplan-store-" + hashlib.sha1(key.encode()).hexdigest(),
            unique=True, result_ttl=3600, failure_ttl=7 * 24 * 3600, retry=SYNC_RETRY)
    except DuplicateJobError:
        pass  # the PBX repeated the push while the database was down


def enqueue_sync(call_log_id: int, replace: bool = False, fresh: bool = False) -> None:
    """Queue the sync of a call, unless a live job for it exists; a finished one is replaced.

    ``replace`` (the sweeper, once it knows the job's worker is dead) replaces any job.
    ``fresh`` (the hook, for a row it has just inserted) skips the uniqueness check: no job can
    have that id yet, and the check costs Redis round trips inside the hook's 2 ms.
    """
    from .jobs import sync_call
    q = queue(SYNC_QUEUE)
    job_id = sync_job_id(call_log_id)
    if fresh:
        q.enqueue(sync_call, call_log_id, job_id=job_id, result_ttl=3600,
                  failure_ttl=7 * 24 * 3600, retry=SYNC_RETRY)
        return
    for _ in range(2):
        try:
            q.enqueue(sync_call, call_log_id, job_id=job_id, unique=True,
                      result_ttl=3600, failure_ttl=7 * 24 * 3600, retry=SYNC_RETRY)
            return
        except DuplicateJobError:
            job = q.fetch_job(job_id)
            if job is None:
                continue
            if not replace and job.get_status(refresh=False) not in TERMINAL_STATUSES:
                return  # queued, scheduled for a retry or running: the job is idempotent
            job.delete()
