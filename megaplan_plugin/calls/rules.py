"""What a hook needs to know of an account's settings, read once and kept in memory.

Hooks have 2 ms; a settings query per call would spend half of it, and with a thousand
accounts a short expiry would make most calls pay it. So entries live long, and a change
reaches every process through Redis: saving the settings page clears this process's copy
and bumps ``GENERATION_KEY``; every process looks at that key at most once per
``CHECK_SECONDS`` and forgets everything when it moved. While Redis cannot be asked, entries
last ``CHECK_SECONDS`` only.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cachetools import TTLCache
from redis.exceptions import RedisError
from sqlalchemy import select

from megaplan_plugin.calls import who_answers
from megaplan_plugin.models import Settings

TTL_SECONDS = 600.0
CHECK_SECONDS = 1.0
GENERATION_KEY = "megaplan:settings:generation"


@dataclass(frozen=True)
class HookSettings:
    active: bool
    numbers: frozenset[str] | None  # None: no filter by virtual number
    route_to_manager: bool = False
    credential_id: int | None = None
    route: object = None  # who_answers.Options (whom to ring) when routing is on

    def wants(self, virtual_number: str | None) -> bool:
        return self.why_not(virtual_number) is None

    def why_not(self, virtual_number: str | None) -> str | None:
        return why_not(self.active, self.numbers, virtual_number)


INACTIVE_REASON = "интеграция не активна"


def why_not(active: bool, numbers, virtual_number: str | None) -> str | None:
    """The one rule of which calls are for Megaplan: why this one is not, or None.

    ``numbers`` is the «Список виртуальных номеров» when «Фильтровать по виртуальным номерам»
    is on, else None.
    """
    if not active:
        return INACTIVE_REASON
    if numbers is not None and (virtual_number or "") not in numbers:
        return f"номер {virtual_number or '—'} не в списке виртуальных номеров"
    return None


def active(settings) -> bool:
    """The integration is on: activated, with credentials to write with (``settings``: the
    account's ``Settings``, or a row with those two columns)."""
    return settings is not None and bool(settings.active and settings.credential_id is not None)


# The same, as SQL: the accounts whose integration is on.
ACTIVE = (Settings.active.is_(True), Settings.credential_id.is_not(None))


def not_for_megaplan(settings: Settings | None, virtual_number: str | None) -> str | None:
    """``why_not`` of a stored account's settings (jobs, routing, the API, reconciliation)."""
    return why_not(active(settings),
                   (settings.virtual_numbers or []) if settings is not None and settings.filter_by_numbers
                   else None, virtual_number)


INACTIVE = HookSettings(False, None)


class HookSettingsCache:
    """Per app (kept on the plugin's state), so two apps in one process never share answers."""

    def __init__(self, maxsize: int = 100_000, redis=None):
        self._entries = TTLCache(maxsize=maxsize, ttl=TTL_SECONDS)
        self._lock = threading.Lock()
        self._redis = redis
        self._generation = None
        self._checked_at = float("-inf")

    def _check_generation(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < CHECK_SECONDS:
            return
        self._checked_at = now
        try:
            generation = self._redis.get(GENERATION_KEY) if self._redis is not None else None
        except RedisError:
            generation = object()  # unknown: as if it moved, every second
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation

    def get(self, engine, account_id: str) -> HookSettings:
        """From the cache, else read on a connection of ``engine`` given back at once."""
        self._check_generation()
        with self._lock:
            hit = self._entries.get(account_id)
        if hit is not None:
            return hit
        with engine.connect() as conn:
            row = conn.execute(select(Settings).where(Settings.account_id == account_id)).first()
        value = INACTIVE if not active(row) else HookSettings(
            True, frozenset(row.virtual_numbers or ()) if row.filter_by_numbers else None,
            bool(row.route_to_manager), row.credential_id,
            who_answers.options_of(row) if row.route_to_manager else None)
        with self._lock:
            self._entries[account_id] = value
        return value

    def forget(self, account_id: str) -> None:
        """The account's settings changed: this process forgets now, the others within
        ``CHECK_SECONDS``."""
        with self._lock:
            self._entries.pop(account_id, None)
        if self._redis is not None:
            try:
                self._redis.incr(GENERATION_KEY)
            except RedisError:
                pass  # the others' entries are short-lived while Redis is away

