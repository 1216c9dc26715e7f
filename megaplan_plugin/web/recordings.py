"""``/plugins/megaplan/recordings/<token>``: a call's recording for Megaplan's player.

No cabinet session (Megaplan's player has none): the signed token is the permission
(calls/recording_links.py). The recording streams from the PBX's authenticated download
(``host.pbx.recording``) by byte ranges, so a player can seek and nothing holds a whole
recording in memory. A link dies with the account's plugin, with «Хранить записи» and with
«Отозвать ссылки на записи»; a dead one answers a small Russian page.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from html import escape
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request
from redis.exceptions import RedisError
from sqlalchemy import select, update

from megaplan_plugin import cabinet, phones
from megaplan_plugin.calls import recording_links
from megaplan_plugin.crypto import SecretUnreadable
from megaplan_plugin.models import OutboxEntry, Settings, aware, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("megaplan_recordings", __name__)
# A recording the PBX does not have yet within this time of the call's end is being made
# (the PBX may push `history` first); later, it is gone.
STILL_MAKING = timedelta(hours=1)
RETRY_AFTER_SECONDS = 30
# Fetches per minute: a player seeks with a request each; more than this is not a person.
PER_TOKEN_PER_MINUTE = 120
PER_ADDRESS_PER_MINUTE = 600


def _page(status: int, title: str, text: str, headers: dict | None = None):
    body = (f'<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"</head><body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>")
    return Response(body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                                   **(headers or {})})


def _not_found():
    return _page(404, "Запись не найдена", "Ссылка неверна или повреждена.")


def _gone(why: str):
    return _page(410, "Запись недоступна", why)


@bp.get("/plugins/megaplan/recordings/<token>")
def recording(token: str):
    parsed = recording_links.parse(token)
    if parsed is None:
        return _not_found()
    db = cabinet.db()
    settings = db.session.get(Settings, parsed.account_id)
    if settings is None or settings.recording_key_enc is None or parsed.generation > settings.recording_key_generation:
        return _not_found()
    if parsed.generation < settings.recording_key_generation:
        return _gone("Ссылки на записи этого аккаунта отозваны.")
    try:
        key, _ = recording_links.signing_key(settings)
    except SecretUnreadable:  # MEGAPLAN_ENCRYPTION_KEY changed: no link of this key can be checked
        return _gone("Ссылки на записи этого аккаунта больше не действуют.")
    if not recording_links.genuine(key, parsed):
        return _not_found()
    host = cabinet.host()
    if "megaplan" not in host.enabled_plugins(parsed.account_id):
        return _gone("Интеграция с Мегаплан отключена в кабинете.")
    row = db.session.execute(select(OutboxEntry).where(
        OutboxEntry.kind == OutboxEntry.CALL, OutboxEntry.account_id == parsed.account_id,
        OutboxEntry.call_id == parsed.call_id)).scalar_one_or_none()
    if row is None:
        return _not_found()
    started = aware(row.started_at)
    if settings.recording_days and utcnow() - started > timedelta(days=settings.recording_days):
        return _gone(f"Записи хранятся {settings.recording_days} дней; срок этой истёк.")
    limited = _too_many(token)
    if limited:
        return limited
    return _stream(host, row, started)


def _too_many(token: str):
    redis = current_app.extensions["megaplan"].redis
    minute = int(utcnow().timestamp() // 60)
    try:
        pipe = redis.pipeline()
        for key in (f"megaplan:rec:t:{recording_links.digest(token)}:{minute}",
                    f"megaplan:rec:a:{request.remote_addr}:{minute}"):
            pipe.incr(key)
            pipe.expire(key, 120)
        per_token, _, per_address, _ = pipe.execute()
    except RedisError:
        return None  # no counters without Redis: the recording still plays
    if per_token > PER_TOKEN_PER_MINUTE or per_address > PER_ADDRESS_PER_MINUTE:
        return _page(429, "Слишком много запросов", "Повторите через минуту.", {"Retry-After": "60"})
    return None


def _stream(host, row: OutboxEntry, started):
    ranges = request.range.ranges if request.range and request.range.units == "bytes" else None
    start = end = None
    if ranges:
        first, stop = ranges[0]  # several ranges: the first one (RFC 9110 lets a server do so)
        start, end = (None, -first) if first < 0 else (first, None if stop is None else stop - 1)
    found = host.pbx.recording(row.account_id, row.call_id, start, end)
    if found is None:
        if utcnow() - started < STILL_MAKING:
            return _page(503, "Запись ещё обрабатывается", "АТС ещё не сохранила запись этого звонка. "
                         "Попробуйте через минуту.", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return _gone("АТС больше не хранит эту запись.")
    if found.end < found.start:
        found.close()
        return Response(status=416, headers={"Content-Range": f"bytes */{found.total_length}"})
    if not ranges or found.start == 0:
        cabinet.db().session.execute(update(OutboxEntry).where(OutboxEntry.id == row.id).values(
            recording_plays=OutboxEntry.recording_plays + 1))
        cabinet.db().session.commit()
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(found.end - found.start + 1),
               "Content-Disposition": _disposition(row, started, found.content_type),
               "Cache-Control": "no-store"}  # a revoked link must not keep playing from a cache
    if ranges:
        headers["Content-Range"] = f"bytes {found.start}-{found.end}/{found.total_length}"
    response = Response(found.chunks, 206 if ranges else 200, headers, mimetype=found.content_type,
                        direct_passthrough=True)
    response.call_on_close(found.close)
    return response


def _disposition(row: OutboxEntry, started, content_type: str) -> str:
    user = (row.record.get("user") or {}).get("name") or ""
    extension = recording_links.extension(content_type)
    name = f"{started:%Y-%m-%d_%H-%M} {phones.display(row.client_phone)} {user}".strip()
    name = "".join(c if c.isalnum() or c in " +-_()." else "_" for c in name) + f".{extension}"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
