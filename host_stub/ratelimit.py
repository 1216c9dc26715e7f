"""Fixed-window failure counters for the login form, kept in Redis.

One counter per login and one per client address (``cabinet:login:user:…`` and
``cabinet:login:addr:…``); a window starts with the first failure and lasts
``CABINET_LOGIN_WINDOW_SECONDS``. Without ``REDIS_URL`` the counters live in an in-process
fakeredis, which is enough for the single-process embedded default.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import redis as redis_lib
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
PREFIX = "cabinet:login"


def connect(url: str | None):
    if url:
        return redis_lib.Redis.from_url(url)
    import fakeredis
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@dataclass
class LoginLimiter:
    redis: object
    max_per_login: int = 10
    max_per_address: int = 30
    window: int = 15 * 60

    @classmethod
    def from_config(cls, config) -> LoginLimiter:
        return cls(connect(config.get("REDIS_URL")),
                   max_per_login=config["CABINET_LOGIN_MAX_PER_LOGIN"],
                   max_per_address=config["CABINET_LOGIN_MAX_PER_ADDRESS"],
                   window=config["CABINET_LOGIN_WINDOW_SECONDS"])

    def _keys(self, login: str, address: str | None) -> tuple[str, str]:
        # Case-folded so «Demo» and «demo» share a counter; hashed to keep keys short and plain.
        user = hashlib.sha256(login.strip().casefold().encode()).hexdigest()[:32]
        return f"{PREFIX}:user:{user}", f"{PREFIX}:addr:{address or 'unknown'}"

    def blocked_for(self, login: str, address: str | None) -> int:
        """Seconds until this login may be tried again from this address; 0 when it may now."""
        user_key, addr_key = self._keys(login, address)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(user_key).get(addr_key).ttl(user_key).ttl(addr_key)
            user_count, addr_count, user_ttl, addr_ttl = pipe.execute()
        except RedisError:
            # A Redis outage must not lock everybody out of the cabinet; it is logged loudly.
            log.exception("login rate limit unavailable: Redis error")
            return 0
        wait = 0
        if int(user_count or 0) >= self.max_per_login:
            wait = max(wait, _ttl(user_ttl, self.window))
        if int(addr_count or 0) >= self.max_per_address:
            wait = max(wait, _ttl(addr_ttl, self.window))
        return wait

    def failed(self, login: str, address: str | None) -> None:
        """Count a failed attempt: INCR, and EXPIRE only when the INCR opened the window."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            for key in self._keys(login, address):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)
            pipe.execute()
        except RedisError:
            log.exception("login rate limit unavailable: Redis error")

    def succeeded(self, login: str) -> None:
        """A right password ends the login's window; the address keeps counting."""
        try:
            self.redis.delete(self._keys(login, None)[0])
        except RedisError:
            log.exception("login rate limit unavailable: Redis error")


def _ttl(ttl: int | None, window: int) -> int:
    # -1 (no expiry, e.g. a key written by hand) or -2 (just expired): count a whole window.
    return ttl if ttl and ttl > 0 else window


def minutes(seconds: int) -> str:
    """«1 минуту», «3 минуты», «15 минут»: the wait, rounded up, in the accusative."""
    n = max(1, math.ceil(seconds / 60))
    if n % 10 == 1 and n % 100 != 11:
        word = "минуту"
    elif n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        word = "минуты"
    else:
        word = "минут"
    return f"{n} {word}"
