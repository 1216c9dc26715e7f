"""HTTP conventions of API v3: JSON-in-query, the envelope, links substituted back."""
from __future__ import annotations

import json
import logging
import socket
import sys
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import netguard
from .errors import (MegaplanDestinationRefused, MegaplanError, MegaplanPermanentError,
                     MegaplanRedirectError, MegaplanTransientError, MegaplanUnreachable)

log = logging.getLogger(__name__)

# One text for refused, reset, timed out and TLS failures alike: which one it was would tell
# whoever typed the domain whether something listens there. Details go to a debug log only.
UNREACHABLE = "Мегаплан не отвечает: нет соединения или истёк timeout"
REDIRECTED = "Мегаплан ответил перенаправлением на {target}; проверьте домен"
NO_PROXY = "Прокси не поддерживается: адрес Мегаплан проверяется при соединении"


def build_url(base_url: str, path: str, params: dict | None) -> str:
    """Query parameters are ONE URL-encoded JSON object after ``?`` (pitfall 2)."""
    url = base_url + path
    if params:
        url += "?" + quote(json.dumps(params, ensure_ascii=False, separators=(",", ":")), safe="")
    return url


def error_for(status: int, message: str, request_id: str | None,
              retry_after: str | None = None) -> MegaplanError:
    if status == 429 or status >= 500:
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return MegaplanTransientError(message, status=status, request_id=request_id, retry_after=seconds)
    return MegaplanPermanentError(message, status=status, request_id=request_id)


def unwrap(response: requests.Response) -> dict:
    """The envelope's ``data`` (with ``included`` resolved); raises on any error, 200 or not."""
    request_id = response.headers.get("X-Request-Id")
    if 300 <= response.status_code < 400:  # a session that followed none still must not accept one
        raise redirect_error(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    meta = body.get("meta") if isinstance(body, dict) else None
    status = response.status_code
    if isinstance(meta, dict) and isinstance(meta.get("status"), int):
        status = meta["status"] if status < 400 else status  # a 200 may carry an error inside
    if status >= 400 or not isinstance(body, dict):
        errors = (meta or {}).get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        message = first.get("message") or (body or {}).get("error_description") if isinstance(body, dict) else None
        raise error_for(status if status >= 400 else 502, message or response.reason or "invalid response",
                        request_id or (meta or {}).get("requestId"), response.headers.get("Retry-After"))
    data = body.get("data")
    return resolve_links(data, body.get("included") or [])


def resolve_links(data, included: list):
    """Put full entities back where the server left bare ``{contentType, id}`` links (pitfall 8)."""
    known: dict[tuple, dict] = {}

    def collect(node):
        if isinstance(node, dict):
            if "contentType" in node and "id" in node and len(node) > 2:
                known.setdefault((node["contentType"], str(node["id"])), node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    def fill(node):
        if isinstance(node, dict):
            if set(node) == {"contentType", "id"}:
                return known.get((node["contentType"], str(node["id"])), node)
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(item) for item in node]
        return node

    collect(included)
    collect(data)
    return fill(data) if known else data


# -- the session every Megaplan request should go through -----------------------------------------
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


def redirect_error(response: requests.Response) -> MegaplanRedirectError:
    return MegaplanRedirectError(REDIRECTED.format(target=_redirect_target(response)),
                                 status=response.status_code,
                                 request_id=response.headers.get("X-Request-Id"))


def _redirect_target(response: requests.Response) -> str:
    """Only scheme, host and port of the Location: its path or query may carry anything."""
    location = response.headers.get("Location")
    try:
        parts = urlsplit(urljoin(response.url or "", location or ""))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "другой адрес"
    if not location or parts.scheme not in ("http", "https") or not host:
        return "другой адрес"
    host = "".join(ch for ch in host if ch.isalnum() or ch in ".-:")[:253]
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


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
