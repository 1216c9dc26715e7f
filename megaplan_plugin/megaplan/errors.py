"""Typed errors of the Megaplan API: transient ones are retried by jobs, permanent ones stop."""
from __future__ import annotations


class MegaplanError(Exception):
    transient = False

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status or '-'}: {self.message}{where}"


class MegaplanTransientError(MegaplanError):
    """5xx, 429, timeouts, connection failures: worth trying again later."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class MegaplanPermanentError(MegaplanError):
    """The request itself is wrong (403, 404, 422…): repeating it gives the same answer."""


class MegaplanAuthError(MegaplanPermanentError):
    """Megaplan refused the login or password."""


class InvalidDomain(ValueError):
    """What the admin typed is not a Megaplan account address; the message is Russian."""


class MegaplanRedirectError(MegaplanPermanentError):
    """Megaplan answered 3xx. Redirects are never followed: the login, password and token
    would go wherever the answer points."""


class MegaplanUnreachable(MegaplanTransientError):
    """Refused, reset or timed out: one message for all, so it tells nothing about ports."""


class MegaplanDestinationRefused(MegaplanPermanentError):
    """Nothing was sent: not https, or the domain points at a non-public address."""


class MegaplanDomainNotFound(MegaplanTransientError):
    """The domain does not resolve (DNS may also just be failing for a while)."""


class NotMegaplanError(MegaplanPermanentError):
    """The address answers HTTP, but not as Megaplan's API does (no JSON token answer)."""
