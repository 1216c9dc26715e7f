"""Queues, job ids, the retry policy, and the Redis connection the plugin works with.

Jobs are enqueued by dotted path, so nothing here (nor in hooks) imports the job functions.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.rate_limit import RateLimit
from rq.exceptions import DuplicateJobError

LIVE_QUEUE = "megaplan-live"
SYNC_QUEUE = "megaplan"
QUEUES = (LIVE_QUEUE, SYNC_QUEUE)

JOBS = "megaplan_plugin.delivery.jobs."
PERIODIC = "megaplan_plugin.delivery.periodic."
LIVE_EVENT = JOBS + "live_event"
SYNC_CALL = JOBS + "sync_call"
REFRESH_ROUTE = PERIODIC + "refresh_route"
INDEX_CLIENTS = PERIODIC + "index_clients"
WRITE_CALL_USER_CONFIGS = PERIODIC + "write_call_user_configs"

# A popup a minute late is noise: live jobs expire in the queue and are dropped when stale.
POPUP_MAX_AGE = timedelta(seconds=60)
# Megaplan outages are usually minutes: the first retries come quickly so a short outage
# costs seconds, then back off to span about three hours before a call is left «ошибка» for
# the journal's «Повторить» and the sweeper.
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
    return hashlib.sha1("\0".join(p or "" for p in parts).encode()).hexdigest()


def live_job_id(account_id: str, call_id: str, hook: str, login: str | None) -> str:
    return "megaplan-live-" + _digest(account_id, call_id, hook, login)


def call_job_id(account_id: str, call_id: str) -> str:
    return "megaplan-call-" + _digest(account_id, call_id)


def route_job_id(account_id: str, phone: str) -> str:
    return "megaplan-route-" + _digest(account_id, phone)


# Fairness: an account whose Megaplan was down all day has thousands of calls to send; at
# most MEGAPLAN_JOBS_PER_ACCOUNT of them are queued or running at once (RQ's RateLimit keeps
# the rest aside and feeds them in as slots free), so every other account's calls go straight
# to a worker, as long as there are more sync workers than that.
def account_share(account_id: str) -> RateLimit:
    return RateLimit("megaplan-account-" + _digest(account_id),
                     current_app.config["MEGAPLAN_JOBS_PER_ACCOUNT"])


def enqueue_live(payload: dict, hook: str) -> None:
    """Queue a popup job; a repeated push of the same event is dropped (same job id)."""
    login = (payload.get("user") or {}).get("login")
    try:
        queue(LIVE_QUEUE).enqueue(
            LIVE_EVENT, payload["account_id"], hook, payload,
            job_id=live_job_id(payload["account_id"], payload["call_id"], hook, login),
            unique=True, ttl=int(POPUP_MAX_AGE.total_seconds()), result_ttl=60,
            failure_ttl=3600, retry=Retry(max=len(LIVE_RETRY_INTERVALS), interval=LIVE_RETRY_INTERVALS))
    except DuplicateJobError:
        pass


def enqueue_call(account_id: str, call_id: str, record: dict | None = None, *,
                 fresh: bool = False, replace: bool = False) -> None:
    """Queue the sync of a finished call, keyed by the PBX call id.

    ``record`` travels in the job only when the database could not store it (the job stores
    it first). ``fresh`` (the hook, right after inserting the row) skips the uniqueness check:
    no job can have this id yet, and the check costs Redis round trips inside the hook's 2 ms.
    ``replace`` (the sweeper, «Повторить») replaces a job that is finished, failed or waiting
    for a far retry; a job that is running or queued now is left alone.
    """
    job_id = call_job_id(account_id, call_id)
    options = dict(result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, rate_limit=account_share(account_id),
                   retry=Retry(max=len(SYNC_RETRY_INTERVALS), interval=SYNC_RETRY_INTERVALS))
    args = (account_id, call_id) if record is None else (account_id, call_id, record)
    if fresh:
        queue(SYNC_QUEUE).enqueue(SYNC_CALL, *args, job_id=job_id, **options)
        return
    _enqueue_once(SYNC_CALL, args, job_id, replace=replace, **options)


def _enqueue_once(func: str, args: tuple, job_id: str, *, replace: bool = False, **options) -> None:
    """Enqueue unless a job with this id is queued or running; a finished or failed one (and,
    with ``replace``, one waiting for a retry) gives way to the new one."""
    q = queue(SYNC_QUEUE)
    # RQ refuses `unique` for rate-limited jobs, so look first; two callers racing here at
    # worst queue the job twice, and the job is idempotent (it runs under its call's lock).
    job = q.fetch_job(job_id)
    if job is not None:
        status = job.get_status(refresh=False)
        if status in ("queued", "started", "rate_limited") or \
                (status not in TERMINAL_STATUSES and not replace):
            return  # on its way
        job.delete()
    q.enqueue(func, *args, job_id=job_id, **options)


def enqueue_route_refresh(account_id: str, phone: str) -> None:
    try:
        queue(SYNC_QUEUE).enqueue(
            REFRESH_ROUTE, account_id, phone, job_id=route_job_id(account_id, phone),
            unique=True, result_ttl=0, failure_ttl=3600,
            retry=Retry(max=len(LIVE_RETRY_INTERVALS), interval=LIVE_RETRY_INTERVALS))
    except DuplicateJobError:
        pass  # already on its way


def enqueue_index(credential_id: int) -> None:
    _enqueue_once(INDEX_CLIENTS, (credential_id,), f"megaplan-index-{credential_id}",
                  job_timeout=3600, result_ttl=600, failure_ttl=24 * 3600,
                  retry=Retry(max=3, interval=[60, 300, 900]))


def enqueue_call_user_configs(account_id: str) -> None:
    _enqueue_once(WRITE_CALL_USER_CONFIGS, (account_id,), "megaplan-cuc-" + _digest(account_id),
                  result_ttl=600, failure_ttl=24 * 3600, retry=Retry(max=3, interval=[10, 60, 300]))
