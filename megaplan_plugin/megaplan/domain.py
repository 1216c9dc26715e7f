"""Turning what an admin typed as «Домен» into the account's base URL."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from . import netguard
from .errors import InvalidDomain, MegaplanDestinationRefused, MegaplanDomainNotFound

# Megaplan cloud accounts live under these suffixes; a boxed install would be added here.
ALLOWED_SUFFIXES = (".megaplan.ru",)
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
FORMAT_HINT = "Укажите домен Мегаплан в формате YOURDOMAIN.megaplan.ru"


def normalize_domain(value: str, allow_http: bool = False) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidDomain(FORMAT_HINT)
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidDomain(FORMAT_HINT) from None
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme == "http":
        if not allow_http:
            raise InvalidDomain(FORMAT_HINT + " (только https)")
        if not host or parts.username or parts.password:
            raise InvalidDomain(FORMAT_HINT)
        return f"http://{host}:{port}" if port else f"http://{host}"
    if parts.scheme == "https" and port not in (None, 443) and allow_http and not parts.username:
        raise InvalidDomain(FORMAT_HINT + "; песочница Мегаплан — адрес вида http://127.0.0.1:5001 (http, не https)")
    if parts.scheme != "https" or port not in (None, 443) or parts.username or parts.password:
        raise InvalidDomain(FORMAT_HINT)
    suffix = next((s for s in ALLOWED_SUFFIXES if host.endswith(s)), None)
    account = host[: -len(suffix)] if suffix else ""
    if (not suffix or not _LABEL.match(account)) and allow_http:
        # a demo or test cabinet: its Megaplan sandbox speaks plain http on a port of its own
        raise InvalidDomain(FORMAT_HINT + "; песочница Мегаплан — адрес вида http://127.0.0.1:5001 (http, не https)")
    if not suffix or not _LABEL.match(account):
        raise InvalidDomain(FORMAT_HINT)
    return f"https://{host}"


def check_domain_addresses(base_url: str, allow_http: bool = False) -> None:
    """Save-time check of a normalised base URL: https, and a name resolving to public
    addresses only («Домен указывает на внутренний адрес», «Домен не найден»).

    Not a substitute for the same check the session makes on every request (DNS changes);
    it lets the settings form show the reason beside «Домен». No-op when ``allow_http``.
    """
    try:
        netguard.check_url(base_url, allow_http=allow_http)
        if allow_http:  # no address rules in tests and demos, but a name must still resolve
            parts = urlsplit(base_url)
            netguard.resolve(parts.hostname or "", parts.port or 80)
    except (MegaplanDestinationRefused, MegaplanDomainNotFound) as exc:
        raise InvalidDomain(exc.message) from None
