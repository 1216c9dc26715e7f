"""The plugin's own permanent links to call recordings (what goes into ``recordLinks``).

The PBX's pushed ``link`` needs no login and lapses after about a week. Megaplan gets
``<MEGAPLAN_PUBLIC_URL>/plugins/megaplan/recordings/<token>`` instead, and the plugin streams
the recording from the PBX's authenticated download (``host.pbx.recording``) for as long as the
account wants it kept. The token names the account, the key's generation and the call, and is
signed with the account's own key (HMAC-SHA256): it cannot be guessed, forged or moved to
another call or account, and «Отозвать ссылки на записи» (a new key, the next generation)
kills every link given out before.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_TOKEN = re.compile(r"^(?P<account>[A-Za-z0-9_.-]{1,64})~(?P<generation>\d{1,9})~(?P<call>[A-Za-z0-9_-]{1,200})"
                    r"~(?P<sig>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Token:
    account_id: str
    generation: int
    call_id: str
    signature: str


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _sign(key: str, account_id: str, generation: int, call_id: str) -> str:
    message = f"{account_id}\0{generation}\0{call_id}".encode("utf-8", "surrogatepass")
    return _b64(hmac.new(key.encode(), message, hashlib.sha256).digest())


def make(key: str, account_id: str, generation: int, call_id: str) -> str:
    encoded_call = _b64(call_id.encode("utf-8", "surrogatepass"))
    return f"{account_id}~{generation}~{encoded_call}~{_sign(key, account_id, generation, call_id)}"


def parse(token: str) -> Token | None:
    """The token's parts, unverified; None when it is no token of ours at all."""
    match = _TOKEN.match(token or "")
    if not match:
        return None
    try:
        call = base64.urlsafe_b64decode(match["call"] + "=" * (-len(match["call"]) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return Token(match["account"], int(match["generation"]), call, match["sig"])


def genuine(key: str, token: Token) -> bool:
    return hmac.compare_digest(token.signature, _sign(key, token.account_id, token.generation, token.call_id))


def digest(token: str) -> str:
    """A short name for a token in rate-limit counters (the token itself is a permission)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/plugins/megaplan/recordings/{token}"


def signing_key(settings) -> tuple[str, int]:
    """The account's (key, generation); the key exists once a link was given (``make_key``)."""
    from megaplan_plugin.crypto import decrypt
    return decrypt(settings.recording_key_enc), settings.recording_key_generation or 1


def make_key(settings, engine) -> None:
    """The account's first key, in a statement of its own on ``engine``, not in the caller's
    transaction (the writer's session must not hold a write lock while it asks Megaplan
    things); the first of two at once wins."""
    from sqlalchemy import update
    from sqlalchemy.orm.attributes import set_committed_value

    from megaplan_plugin.crypto import encrypt
    from megaplan_plugin.models import Settings
    table = Settings.__table__
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.account_id == settings.account_id,
                                         table.c.recording_key_enc.is_(None))
                     .values(recording_key_enc=encrypt(new_key())))
        made = conn.execute(table.select().where(table.c.account_id == settings.account_id)).one()
    set_committed_value(settings, "recording_key_enc", made.recording_key_enc)
    set_committed_value(settings, "recording_key_generation", made.recording_key_generation)


def revoke(settings) -> None:
    """«Отозвать ссылки на записи»: a new key of the next generation; every older link dies."""
    from megaplan_plugin.crypto import encrypt
    settings.recording_key_enc = encrypt(new_key())
    settings.recording_key_generation = (settings.recording_key_generation or 1) + 1


def link_for(settings, record: dict, public_url: str | None, engine) -> str | None:
    """What goes into ``recordLinks``: the plugin's permanent link where the host offers the
    PBX's authenticated download (revision 3), else the PBX's own link; None without one."""
    if not record.get("recording_url"):
        return None
    if not public_url:
        return record["recording_url"]
    if settings.recording_key_enc is None:
        make_key(settings, engine)
    key, generation = signing_key(settings)
    return url(public_url, make(key, settings.account_id, generation, record["call_id"]))


def extension(content_type: str) -> str:
    """A recording file's extension by its type (file names for people and for Megaplan)."""
    return {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/ogg": "ogg"}.get(content_type, "bin")
