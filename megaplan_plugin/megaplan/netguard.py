"""Where the client may connect: https only, and only to public internet addresses.

The admin types the Megaplan domain, so a hostile or mistaken value could point the plugin at
the host's own services, the internal network or a cloud metadata endpoint (SSRF). In
production (``MEGAPLAN_ALLOW_HTTP`` off) every request the client makes is checked here, right
before it goes out: the scheme must be https and EVERY address the domain resolves to must be a
public one. The session (``session.py``) then connects to one of exactly these vetted
addresses, so DNS cannot swap in an internal address between the check and the connect.

With ``MEGAPLAN_ALLOW_HTTP`` on (tests, the sandbox on 127.0.0.1) nothing here is applied.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import MegaplanDestinationRefused, MegaplanDomainNotFound

INTERNAL_ADDRESS = "Домен указывает на внутренний адрес"
HTTPS_ONLY = "Мегаплан доступен только по https"
NOT_FOUND = "Домен не найден"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SITE_LOCAL_V6 = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some networks


def is_public_address(value: str | Address) -> bool:
    """True only for a unicast address on the public internet.

    ``is_global`` alone is not enough (multicast ranges count as global, embedded IPv4 in
    IPv6 forms is not looked into on every Python), hence the explicit checks.
    """
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0] if isinstance(value, str) else value)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip in _SITE_LOCAL_V6 or ip.teredo is not None:
            return False
    elif ip in _CARRIER_GRADE_NAT or ip in _THIS_NETWORK:
        return False
    if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_unspecified or ip.is_reserved):
        return False
    return ip.is_global


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form leads to (mapped, 6to4, NAT64), judged as that address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def resolve(host: str, port: int) -> list[tuple]:
    """``socket.getaddrinfo`` for a TCP connection; a name that does not resolve is «Домен не найден»."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise MegaplanDomainNotFound(NOT_FOUND) from None
    if not infos:
        raise MegaplanDomainNotFound(NOT_FOUND)
    return infos


def vetted_addresses(host: str, port: int) -> list[tuple]:
    """Resolve ``host`` now and return its getaddrinfo entries, all of them public.

    Refuses (``MegaplanDestinationRefused``) if ANY address is not public: a name that
    resolves to one public and one internal address is as unsafe as a purely internal one.
    """
    host = (host or "").strip("[]").rstrip(".")
    if not host:
        raise MegaplanDomainNotFound(NOT_FOUND)
    infos = resolve(host, port)
    if not all(is_public_address(info[4][0]) for info in infos):
        raise MegaplanDestinationRefused(INTERNAL_ADDRESS)
    return infos


def check_url(url: str, *, allow_http: bool) -> None:
    """The whole verdict for one request; raises before anything is sent, returns None if fine."""
    if allow_http:
        return
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise MegaplanDestinationRefused(NOT_FOUND) from None
    if parts.scheme.lower() != "https":
        raise MegaplanDestinationRefused(HTTPS_ONLY)
    vetted_addresses(parts.hostname or "", port)
