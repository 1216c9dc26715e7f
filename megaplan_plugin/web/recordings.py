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
from sqlalchemy import and_, bindparam, select

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
    with cabinet.db().engine.connect() as conn:  # one statement; the connection goes back before the stream
        found = conn.execute(_LOOKUP, {"account": parsed.account_id, "call": parsed.call_id}).one_or_none()
    if found is None or found.recording_key_enc is None or parsed.generation > found.recording_key_generation:
        return _not_found()
    if parsed.generation < found.recording_key_generation:
        return _gone("Ссылки на записи этого аккаунта отозваны.")
    try:
        key, _ = recording_links.signing_key(found)
    except SecretUnreadable:  # MEGAPLAN_ENCRYPTION_KEY changed: no link of this key can be checked
        return _gone("Ссылки на записи этого аккаунта больше не действуют.")
    if not recording_links.genuine(key, parsed):
        return _not_found()
    host = cabinet.host()
    if "megaplan" not in host.enabled_plugins(parsed.account_id):
        return _gone("Интеграция с Мегаплан отключена в кабинете.")
    if found.outbox_id is None:
        return _not_found()
    started = aware(found.started_at)
    if found.recording_days and utcnow() - started > timedelta(days=found.recording_days):
        return _gone(f"Записи хранятся {found.recording_days} дней; срок этой истёк.")
    limited = _too_many(token)
    if limited:
        return limited
    return _stream(host, parsed, found, started)


# The account's key and the call's row in one statement (the link is fetched on every seek, so
# what it costs is paid per request); the outer join tells "no such call" from "no such account".
_settings, _outbox = Settings.__table__, OutboxEntry.__table__
_LOOKUP = (select(_settings.c.recording_key_enc, _settings.c.recording_key_generation,
                  _settings.c.recording_days, _outbox.c.id.label("outbox_id"), _outbox.c.started_at,
                  _outbox.c.client_phone, _outbox.c.record)
           .select_from(_settings.outerjoin(_outbox, and_(
               _outbox.c.account_id == _settings.c.account_id, _outbox.c.kind == OutboxEntry.CALL,
               _outbox.c.call_id == bindparam("call"))))
           .where(_settings.c.account_id == bindparam("account")))


def _too_many(token: str):
    redis = current_app.extensions["megaplan"].redis
    minute = int(utcnow().timestamp() // 60)
    try:
        pipe = redis.pipeline(transaction=False)  # one round trip; two counters need no MULTI
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


def _stream(host, parsed, found, started):
    ranges = request.range.ranges if request.range and request.range.units == "bytes" else None
    start = end = None
    if ranges:
        first, stop = ranges[0]  # several ranges: the first one (RFC 9110 lets a server do so)
        start, end = (None, -first) if first < 0 else (first, None if stop is None else stop - 1)
    recording = host.pbx.recording(parsed.account_id, parsed.call_id, start, end)
    if recording is None:
        if utcnow() - started < STILL_MAKING:
            return _page(503, "Запись ещё обрабатывается", "АТС ещё не сохранила запись этого звонка. "
                         "Попробуйте через минуту.", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return _gone("АТС больше не хранит эту запись.")
    if recording.end < recording.start:
        recording.close()
        return Response(status=416, headers={"Content-Range": f"bytes */{recording.total_length}"})
    if not ranges or recording.start == 0:
        current_app.extensions["megaplan"].plays.add(cabinet.db().engine, found.outbox_id)  # web/play_counts.py
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(recording.end - recording.start + 1),
               "Content-Disposition": _disposition(found, started, recording.content_type),
               "Cache-Control": "no-store"}  # a revoked link must not keep playing from a cache
    if ranges:
        headers["Content-Range"] = f"bytes {recording.start}-{recording.end}/{recording.total_length}"
    response = Response(recording.chunks, 206 if ranges else 200, headers, mimetype=recording.content_type,
                        direct_passthrough=True)
    response.call_on_close(recording.close)
    return response


def _disposition(found, started, content_type: str) -> str:
    user = ((found.record or {}).get("user") or {}).get("name") or ""
    extension = recording_links.extension(content_type)
    name = f"{started:%Y-%m-%d_%H-%M} {phones.display(found.client_phone)} {user}".strip()
    name = "".join(c if c.isalnum() or c in " +-_()." else "_" for c in name) + f".{extension}"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
