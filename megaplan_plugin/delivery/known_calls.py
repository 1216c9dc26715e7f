"""The CallInfo each PBX call has in Megaplan, as the job that made it left it in Redis.

A call is written to Megaplan exactly once: the popup creates its one CallInfo and every later
job updates it, under the call's lock. The jobs remember the CallInfo in a Redis key per call.
A missing key used to cost a ``GET /callInfo/provider`` per call to be sure. It is proof
enough on its own when Redis has lost nothing since before the call started, which
``SINCE_KEY`` tells: the Redis server's run id and the moment it was first seen. A flush or a
restart without persistence takes that key with the others; a restart that reloads a snapshot
(which may miss the newest keys) brings a new run id; either way the moment moves to now, and
calls that started before it are looked up in Megaplan as before. Eviction would drop keys
silently, so Redis must run with ``maxmemory-policy noeviction`` (RQ needs it too), or
``MEGAPLAN_REDIS_KEEPS_KEYS`` be off.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from flask import current_app
from redis.exceptions import ResponseError

from megaplan_plugin.megaplan import MegaplanClient
from megaplan_plugin.models import aware

KEY_SECONDS = 4 * 3600
SINCE_KEY = "megaplan:redis:since"
# Call times come from the PBX (history) or the cabinet (popups), the moment above from a
# worker: NTP-synchronised clocks agree far better than this.
CLOCK_SLACK = timedelta(minutes=1)
IN_PROCESS = "in-process"  # fakeredis has no INFO; it loses everything with its process anyway
NEVER = datetime.max.replace(tzinfo=timezone.utc)


def _call_key(account_id: str, call_id: str) -> str:
    return f"megaplan:callinfo:{account_id}:{call_id}"


def live_call_key(account_id: str, megaplan_call_id) -> str:
    """Megaplan call id → PBX call id, for «Завершить» from the popup."""
    return f"megaplan:livecall:{account_id}:{megaplan_call_id}"


def remember(conn, account_id: str, call_id: str, call: dict, state: str) -> None:
    remember_many(conn, account_id, [(call_id, call)], state)


def remember_many(conn, account_id: str, calls: list[tuple[str, dict]], state: str) -> None:
    """(PBX call id, its CallInfo) pairs, in one round trip."""
    pipe = conn.pipeline(transaction=False)
    for call_id, call in calls:
        memory = json.dumps({"id": str(call["id"]), "state": state})
        pipe.set(_call_key(account_id, call_id), memory, ex=KEY_SECONDS)
        pipe.set(live_call_key(account_id, call["id"]), call_id, ex=KEY_SECONDS)
    pipe.execute()


def lookup(conn, client: MegaplanClient, account_id: str, call_id: str,
           started_at: datetime) -> dict | None:
    """``{"id", "state"}`` of the call's CallInfo, or None when Megaplan has none.

    One Redis round trip; Megaplan is asked only when Redis cannot vouch for the absence.
    """
    sure, call = recall(conn, account_id, call_id, started_at)
    if sure:
        return call
    found = client.get_call_by_provider(call_id)
    return {"id": str(found["id"]), "state": found.get("state")} if found else None


def recall(conn, account_id: str, call_id: str, started_at: datetime) -> tuple[bool, dict | None]:
    """What Redis knows of the call's CallInfo: ``(True, call or None)``, or ``(False, None)``
    when only Megaplan can tell."""
    pipe = conn.pipeline(transaction=False)
    pipe.get(_call_key(account_id, call_id))
    raw, since, info = _with_mark(pipe).execute(raise_on_error=False)
    if isinstance(raw, Exception):
        raise raw
    if raw:
        return True, json.loads(raw)
    return aware(started_at) >= _vouched_after(conn, since, info), None


def vouched_after(conn) -> datetime:
    """Calls that started at or after this moment have no CallInfo when Redis holds none."""
    since, info = _with_mark(conn.pipeline(transaction=False)).execute(raise_on_error=False)
    return _vouched_after(conn, since, info)


def remembered(conn, account_id: str, call_ids: list[str]) -> set[str]:
    """Which of the calls have a CallInfo in Redis's memory (one round trip)."""
    if not call_ids:
        return set()
    values = conn.mget([_call_key(account_id, c) for c in call_ids])
    return {c for c, value in zip(call_ids, values) if value}


def _with_mark(pipe):
    """Queue what tells whether Redis lost anything: the mark and the server's run id."""
    pipe.get(SINCE_KEY)
    pipe.info("server")
    return pipe


def _vouched_after(conn, since, info) -> datetime:
    if not current_app.config.get("MEGAPLAN_REDIS_KEEPS_KEYS", True):
        return NEVER
    now = datetime.now(timezone.utc)
    still_kept = now - timedelta(seconds=KEY_SECONDS) + CLOCK_SLACK
    return max(_vouched_from(conn, since, info, now) + CLOCK_SLACK, still_kept)


def vouched_from(conn) -> datetime:
    """Since when Redis has lost nothing (now, if it just did or was restarted)."""
    since, info = _with_mark(conn.pipeline(transaction=False)).execute(raise_on_error=False)
    return _vouched_from(conn, since, info, datetime.now(timezone.utc))


def _vouched_from(conn, since, info, now: datetime) -> datetime:
    if isinstance(info, ResponseError):
        server = IN_PROCESS
    elif isinstance(info, Exception):
        raise info
    else:
        server = info.get("run_id") or IN_PROCESS
    mark = json.loads(since) if since else None
    if mark is None or mark.get("server") != server:
        # Redis lost its keys or was restarted: vouch only for what happens from now on.
        conn.set(SINCE_KEY, json.dumps({"server": server, "at": now.isoformat()}))
        return now
    return datetime.fromisoformat(mark["at"])
