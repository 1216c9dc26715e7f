"""HTTP conventions of API v3: JSON-in-query, the envelope, links substituted back."""
from __future__ import annotations

import json
from urllib.parse import quote, urljoin, urlsplit

import requests

from .errors import MegaplanError, MegaplanPermanentError, MegaplanRedirectError, MegaplanTransientError

REDIRECTED = "Мегаплан ответил перенаправлением на {target}; проверьте домен"


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
