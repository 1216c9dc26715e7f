"""Queues, job ids, the retry policy, and the Redis connection the plugin works with.

Jobs are enqueued by dotted path, so nothing here (nor in hooks) imports the job functions.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.job import Job
from rq.exceptions import DuplicateJobError

LIVE_QUEUE = "megaplan-live"
SYNC_QUEUE = "megaplan"
QUEUES = (LIVE_QUEUE, SYNC_QUEUE)

JOBS = "megaplan_plugin.delivery.jobs."
PERIODIC = "megaplan_plugin.delivery.periodic."
LIVE_EVENT = JOBS + "live_event"
WRITE_ACCOUNT = "megaplan_plugin.delivery.writer.write_account"
STORE_CALL = "megaplan_plugin.delivery.writer.store_call"
STORE_RATING = "megaplan_plugin.delivery.writer.store_rating"
RECONCILE_WINDOW = "megaplan_plugin.delivery.periodic.reconcile_window"
COPY_RECORDING = "megaplan_plugin.delivery.recording_copy.copy_recording"
REFRESH_ROUTE = PERIODIC + "refresh_route"
INDEX_CLIENTS = PERIODIC + "index_clients"
WRITE_CALL_USER_CONFIGS = PERIODIC + "write_call_user_configs"

# A popup a minute late is noise: live jobs expire in the queue and are dropped when stale.
POPUP_MAX_AGE = timedelta(seconds=60)
# Megaplan outages are usually minutes: a call's first retries come quickly so a short outage
# costs seconds, then back off to span about three hours before it is left «ошибка» for the
# journal's «Повторить». The writer keeps this schedule on the outbox row (next_retry_at).
SYNC_RETRY_INTERVALS = [5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 3600]
LIVE_RETRY_INTERVALS = [1, 3]
# Hooks run on the host's request thread with a 2 ms budget: a dead Redis must fail fast.
REDIS_SOCKET_TIMEOUT = 0.5
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
TERMINAL_STATUSES = ("finished", "failed", "stopped", "canceled")


def connect(url: str | None) -> redis.Redis:
    if url:
        # No client-side retries either: the outbox is the retry, and the PBX is waiting.
        return redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT,
                                    socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
                                    retry=RedisRetry(NoBackoff(), 0))
    try:
        import fakeredis  # the embedded mode only: a host with REDIS_URL never needs it
    except ImportError:
        from megaplan_plugin.config import ConfigError
        raise ConfigError(
            "Не задан REDIS_URL, а для встроенного режима нужен пакет fakeredis: задайте REDIS_URL "
            "(рабочий режим) или установите megafon-megaplan-plugin[embedded]. / REDIS_URL is not "
            "set and the embedded mode needs fakeredis: set REDIS_URL (production) or install "
            "megafon-megaplan-plugin[embedded].") from None
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def connection() -> redis.Redis:
    return current_app.extensions["megaplan"].redis


def queue(name: str, conn: redis.Redis | None = None) -> Queue:
    return Queue(name, connection=conn or connection())


def _digest(*parts: str | None) -> str:
    # RQ allows only [A-Za-z0-9_-] in ids, and PBX call ids and logins carry anything.
    # surrogatepass: a lone surrogate from a JSON push must still make an id, not an error
    return hashlib.sha1("\0".join(p or "" for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def route_job_id(account_id: str, phone: str) -> str:
    return "megaplan-route-" + _digest(account_id, phone)


def _enqueue_unique(name: str, func: str, *args, job_id: str, at=None, conn=None, **options) -> bool:
    """Enqueue (at ``at``, if given) unless a job of this id exists; True when queued."""
    q = queue(name, conn)
    try:
        if at is None:
            q.enqueue(func, *args, job_id=job_id, unique=True, **options)
        else:
            q.enqueue_at(at, func, *args, job_id=job_id, unique=True, **options)
    except DuplicateJobError:
        return False
    return True


def enqueue_live(payload: dict, hook: str, at=None) -> None:
    """Queue a popup job; a repeated push of the same event is dropped (same job id). ``at``:
    the same event again later (its ``again`` count in the id), until it is stale."""
    login = (payload.get("user") or {}).get("login")
    job_id = "megaplan-live-" + _digest(payload["account_id"], payload["call_id"], hook, login)
    if at is not None:
        payload = {**payload, "again": int(payload.get("again") or 0) + 1}
        job_id += f"-{payload['again']}"
    _enqueue_unique(LIVE_QUEUE, LIVE_EVENT, payload["account_id"], hook, payload, job_id=job_id, at=at,
          ttl=int(POPUP_MAX_AGE.total_seconds()), result_ttl=60, failure_ttl=3600,
          retry=Retry(max=len(LIVE_RETRY_INTERVALS), interval=LIVE_RETRY_INTERVALS))


# The wake flag of an account's writer: set when a writer job is queued, cleared by that job
# when it starts, so a call stored while the flag is up is seen by the queued writer, and a
# call stored after it is cleared queues the next one. It expires in case its job is lost
# without Redis losing the flag; the sweep replaces such a flag sooner (``wake_writers``).
WAKE_SECONDS = 600
# A writer's slice is a few seconds of work; a job running this long is stuck, not busy.
WRITER_TIMEOUT = 600


def wake_key(account_id: str) -> str:
    return "megaplan:writer:wake:" + _digest(account_id)


def writer_lock_key(account_id: str) -> str:
    return "megaplan:writer:lock:" + _digest(account_id)


def wake_writer(account_id: str, conn: redis.Redis | None = None, at=None) -> bool:
    """Make sure a writer for the account is queued; True when this call queued it. One round
    trip when a writer is already waiting (a burst of calls), two when not.

    ``at``: a writer at that time, for calls waiting for their retry (one job per second)."""
    conn = conn or connection()
    prefix = f"megaplan-writer-{_digest(account_id)}-"
    if at is not None:
        return _enqueue_unique(SYNC_QUEUE, WRITE_ACCOUNT, account_id, job_id=f"{prefix}at-{int(at.timestamp())}",
                     at=at, conn=conn, result_ttl=0, failure_ttl=FAILURE_TTL, job_timeout=WRITER_TIMEOUT)
    job_id = prefix + uuid.uuid4().hex[:12]
    if not conn.set(wake_key(account_id), job_id, nx=True, ex=WAKE_SECONDS):
        return False
    queue(SYNC_QUEUE, conn).enqueue(WRITE_ACCOUNT, account_id, job_id=job_id, result_ttl=0,
                                    failure_ttl=FAILURE_TTL, job_timeout=WRITER_TIMEOUT)
    return True


def wake_writers(account_ids: list[str], conn: redis.Redis) -> None:
    """The sweep's wake-up: ``wake_writer`` for each account, except that a flag whose job is
    gone or ended (a worker that could not run it, Redis keeping the flag but losing the job)
    is replaced instead of trusted."""
    if not account_ids:
        return
    job_ids = [f.decode() if isinstance(f, bytes) else f for f in conn.mget([wake_key(a) for a in account_ids])]
    named = [j for j in job_ids if j]
    jobs = dict(zip(named, Job.fetch_many(named, connection=conn)))
    for account_id, job_id in zip(account_ids, job_ids):
        job = jobs.get(job_id)
        if job is not None and job.get_status(refresh=False) not in TERMINAL_STATUSES:
            continue  # its writer is on its way
        conn.delete(wake_key(account_id))  # no flag, or one whose job is gone or ended
        wake_writer(account_id, conn)


def enqueue_store(record: dict) -> None:
    """The database could not take a finished call: the record rides in a job that stores it
    (and wakes the writer) once it can, retried like any call; a repeated push is one job."""
    _enqueue_unique(SYNC_QUEUE, STORE_CALL, record, job_id="megaplan-store-" + _digest(record["account_id"], record["call_id"]),
          result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
          retry=Retry(max=len(SYNC_RETRY_INTERVALS), interval=SYNC_RETRY_INTERVALS))


def enqueue_store_rating(account_id: str, call_id: str, score: int) -> None:
    """The database could not take a customer's score: a job keeps it once it can."""
    _enqueue_unique(SYNC_QUEUE, STORE_RATING, account_id, call_id, score,
                    job_id="megaplan-rating-" + _digest(account_id, call_id),
                    result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                    retry=Retry(max=len(SYNC_RETRY_INTERVALS), interval=SYNC_RETRY_INTERVALS))


def enqueue_route_refresh(account_id: str, phone: str) -> None:
    _enqueue_unique(SYNC_QUEUE, REFRESH_ROUTE, account_id, phone, job_id=route_job_id(account_id, phone),
          result_ttl=0, failure_ttl=3600, retry=Retry(max=len(LIVE_RETRY_INTERVALS), interval=LIVE_RETRY_INTERVALS))


def _replacing(func: str, args: tuple, job_id: str, **options) -> None:
    """Enqueue unless a job with this id is queued, scheduled or running; a finished or
    failed one gives way to the new one (these jobs are idempotent)."""
    q = queue(SYNC_QUEUE)
    job = q.fetch_job(job_id)
    if job is not None:
        if job.get_status(refresh=False) not in TERMINAL_STATUSES:
            return  # on its way
        job.delete()
    q.enqueue(func, *args, job_id=job_id, **options)


def enqueue_copy(row_id: int, at=None, conn=None) -> bool:
    """A recording copy job (delivery/recording_copy.py), once per row and due time."""
    job_id = f"megaplan-copy-{row_id}" + (f"-{int(at.timestamp())}" if at is not None else "")
    return _enqueue_unique(SYNC_QUEUE, COPY_RECORDING, row_id, job_id=job_id, at=at, conn=conn,
                           result_ttl=0, failure_ttl=FAILURE_TTL, job_timeout=3600)


def enqueue_index(credential_id: int) -> None:
    _replacing(INDEX_CLIENTS, (credential_id,), f"megaplan-index-{credential_id}", job_timeout=3600,
               result_ttl=600, failure_ttl=24 * 3600, retry=Retry(max=3, interval=[60, 300, 900]))


def enqueue_reconcile_window(account_id: str, since, until) -> None:
    """Reconciliation of one account over a window of its past (the time the integration was
    off, when the admin asks for its calls)."""
    _replacing(RECONCILE_WINDOW, (account_id, since.isoformat(), until.isoformat()),
               "megaplan-reconcile-" + _digest(account_id, since.isoformat()),
               result_ttl=600, failure_ttl=24 * 3600, retry=Retry(max=3, interval=[10, 60, 300]))


def enqueue_call_user_configs(account_id: str) -> None:
    _replacing(WRITE_CALL_USER_CONFIGS, (account_id,), "megaplan-cuc-" + _digest(account_id),
               result_ttl=600, failure_ttl=24 * 3600, retry=Retry(max=3, interval=[10, 60, 300]))
