"""OAuth2 password grant with rotating refresh tokens (reference §2.1)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:  # tokens never reach a log through a repr
        return f"Tokens(expires_at={self.expires_at!r})"

    def expiring(self, margin_seconds: float) -> bool:
        if self.expires_at is None:
            return False
        return datetime.now(timezone.utc) + timedelta(seconds=margin_seconds) >= self.expires_at

    @classmethod
    def from_response(cls, data: dict) -> Tokens:
        expires_in = data.get("expires_in")
        expires_at = (datetime.now(timezone.utc) + timedelta(seconds=int(expires_in))
                      if expires_in else None)
        return cls(data["access_token"], data.get("refresh_token"), expires_at)


class TokenStore(Protocol):
    def load(self, fresh: bool = False) -> Tokens | None:
        """The stored pair; ``fresh`` skips any copy kept in memory (asked under the lock)."""

    def refresh_lock(self):
        """A context manager held around a refresh or login: one at a time per credential."""

    def save(self, new: Tokens, replaced: Tokens | None) -> Tokens:
        """Compare-and-swap: store ``new`` only if the stored pair is still ``replaced``;
        return what is stored now (``new``, or the newer pair another worker saved)."""


class MemoryTokenStore:
    """A thread-safe TokenStore in memory (scripts, tests, checking credentials)."""

    def __init__(self, tokens: Tokens | None = None):
        self._tokens = tokens
        self._lock = threading.Lock()
        self._refresh = threading.RLock()  # shared by every client of this store

    def load(self, fresh: bool = False) -> Tokens | None:
        with self._lock:
            return self._tokens

    def refresh_lock(self):
        return self._refresh

    def save(self, new: Tokens, replaced: Tokens | None) -> Tokens:
        with self._lock:
            current = self._tokens
            if current is not None and _refresh(current) != _refresh(replaced):
                return current
            self._tokens = new
            return new


def _refresh(tokens: Tokens | None) -> str | None:
    return tokens.refresh_token if tokens else None
