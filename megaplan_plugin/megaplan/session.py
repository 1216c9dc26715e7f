"""The session every Megaplan request goes through: no redirects followed, one message for
every connection failure and, in production, https to vetted public addresses only
(``netguard.py`` decides which; the connection classes here connect to exactly those)."""
from __future__ import annotations

import logging
import socket
import sys
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import netguard
from .errors import MegaplanDestinationRefused, MegaplanUnreachable
from .transport import redirect_error

log = logging.getLogger(__name__)

# One text for refused, reset, timed out and TLS failures alike: which one it was would tell
# whoever typed the domain whether something listens there. Details go to a debug log only.
UNREACHABLE = "Мегаплан не отвечает: нет соединения или истёк timeout"
NO_PROXY = "Прокси не поддерживается: адрес Мегаплан проверяется при соединении"


def megaplan_session(*, allow_http: bool) -> requests.Session:
    """A ``requests.Session`` that follows no redirect, reports every connection failure with
    one message and, unless ``allow_http`` (tests, the sandbox), connects over https to public
    addresses only, checked on every request."""
    return GuardedSession(allow_http=allow_http)


class GuardedSession(requests.Session):
    def __init__(self, *, allow_http: bool):
        super().__init__()
        self.allow_http = allow_http
        if not allow_http:
            # No proxies, netrc or CA bundle from the environment: a proxy would make the
            # connection (and the address it goes to) the proxy's choice, not the checked one.
            self.trust_env = False
            adapter = GuardedAdapter()
            self.mount("https://", adapter)
            self.mount("http://", adapter)  # refused by the adapter, never sent

    def send(self, request, **kwargs):
        kwargs["allow_redirects"] = False  # the token POST too: a 307/308 would re-send the password
        try:
            response = super().send(request, **kwargs)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            log.debug("megaplan: %s %s failed: %s", request.method, _where(request.url), _cause(exc))
            raise MegaplanUnreachable(UNREACHABLE) from None
        if 300 <= response.status_code < 400:
            error = redirect_error(response)
            response.close()
            raise error
        return response


def _where(url: str) -> str:
    """Scheme, host, port and path for the debug log: no query, no user info."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"
    except ValueError:
        return "?"


def _cause(exc: BaseException) -> str:
    """The chain of exception classes (and errno names) behind a failure, without messages."""
    names, seen = [], set()
    while exc is not None and id(exc) not in seen and len(names) < 8:
        seen.add(id(exc))
        errno = getattr(exc, "errno", None)
        names.append(type(exc).__name__ + (f"[{errno}]" if isinstance(errno, int) else ""))
        wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        reason = getattr(exc, "reason", None)
        exc = wrapped or (reason if isinstance(reason, BaseException) else None) \
            or exc.__cause__ or exc.__context__
    return " <- ".join(names)


class GuardedAdapter(HTTPAdapter):
    """Production mode: https only and public addresses only, judged on every request.

    ``send`` resolves the host and refuses before anything leaves if any address is not
    public. The connection itself is then opened by ``_VettedConnection._new_conn``, which
    resolves again, vets again and connects to one of exactly those addresses, so a DNS answer
    that changes between the check and the connect (rebinding) cannot slip an internal address
    in. TLS still verifies the certificate and sends SNI for the domain name, not the address.

    Residual risk: a kept-alive connection is reused without reconnecting; it stays bound to
    the address vetted when it was opened (the per-request check may refuse it earlier, never
    later).
    """

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _VettedHTTPPool, "https": _VettedHTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise MegaplanDestinationRefused(NO_PROXY)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        netguard.check_url(request.url, allow_http=False)
        if select_proxy(request.url, proxies):
            raise MegaplanDestinationRefused(NO_PROXY)  # the proxy, not we, would pick the address
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                            proxies=proxies)


class _VettedConnection:
    """urllib3 connection whose socket goes to a freshly vetted address of the host."""

    def _new_conn(self) -> socket.socket:
        infos = netguard.vetted_addresses(self._dns_host, self.port)
        try:
            sock = _connect(infos, self.timeout, self.source_address, self.socket_options)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _VettedHTTPConnection(_VettedConnection, HTTPConnection):
    pass


class _VettedHTTPSConnection(_VettedConnection, HTTPSConnection):
    pass


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


def _connect(infos: list[tuple], timeout, source_address, socket_options) -> socket.socket:
    """Like ``socket.create_connection`` but over already vetted getaddrinfo entries."""
    error: OSError | None = None
    for info in infos:
        try:
            return _open_socket(info, timeout, source_address, socket_options)
        except OSError as exc:
            error = exc
    raise error or OSError("no address to connect to")


def _open_socket(info: tuple, timeout, source_address, socket_options) -> socket.socket:
    family, socktype, proto, _canonname, sockaddr = info
    sock = socket.socket(family, socktype, proto)
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
        if timeout is None or isinstance(timeout, (int, float)):  # else urllib3's "default" marker
            sock.settimeout(timeout)
        if source_address:
            sock.bind(source_address)
        sock.connect(sockaddr)
        return sock
    except BaseException:
        sock.close()
        raise
