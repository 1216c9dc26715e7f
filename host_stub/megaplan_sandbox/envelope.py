"""API v3 conventions on the server side: the envelope, JSON-in-query, links and `included`."""
from __future__ import annotations

import copy
import json
from urllib.parse import unquote

from flask import jsonify, request

# Fields a list shows without being asked (reference §1: lists return fewer fields than cards).
LIST_FIELDS = {"Employee": {"name", "position"},
               # Strict, as the docs allow: a collection (list or search) carries a client's
               # name only; phones and responsibles come when `fields` asks for them.
               "ContractorHuman": {"name"},
               "ContractorCompany": {"name"},
               "CallInfo": {"providerId", "type", "state", "fromPhone", "toPhone", "fromUser",
                            "toUser", "timeFrom", "timeTo", "recordLinks"},
               "Todo": {"name", "responsible", "relations", "timeFinished"},
               "CallUserConfig": {"employee", "internalNumber"},
               "Deal": {"name", "number", "contractor", "manager", "state"}}
REFERABLE = ("Employee", "ContractorHuman", "ContractorCompany")
SORTABLE = ("timeCreated", "timeUpdated", "name")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def query_params() -> dict:
    """One JSON object after `?`; anything else is "silently misread" as no parameters."""
    raw = request.query_string.decode("latin-1")
    if not raw:
        return {}
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def envelope(data, status: int = 200, pagination: dict | None = None, included=None):
    meta = {"status": status, "errors": []}
    if pagination is not None:
        meta["pagination"] = pagination
    body = {"meta": meta, "data": data}
    if included is not None:
        body["included"] = included
    return jsonify(body), 200


def error_envelope(status: int, message: str, http_status: int | None = None):
    body = {"meta": {"status": status, "errors": [{"message": message}]}, "data": None}
    return jsonify(body), http_status or status


def render(state, data, *, collection: bool = False, fields: list | None = None, only: bool = False):
    """Expand references once (or into `included` when the client asked), trim list fields."""
    use_included = request.headers.get("X-USE-INCLUDED-RESPONSE", "").lower() == "true"
    seen: set = set()
    included: list = []

    def trim(entity: dict) -> dict:
        if not collection:
            return entity
        wanted = set(fields or ()) if only else LIST_FIELDS.get(entity["contentType"], set()) | set(fields or ())
        return {k: v for k, v in entity.items() if k in wanted or k in ("contentType", "id")}

    def expand(node, top: bool):
        if isinstance(node, list):
            return [expand(item, top) for item in node]
        if not isinstance(node, dict):
            return node
        if not top and set(node) == {"contentType", "id"} and node["contentType"] in REFERABLE:
            key = (node["contentType"], node["id"])
            entity = state.find(*key)
            if entity is None or key in seen:
                return node
            seen.add(key)
            full = {k: expand(v, False) for k, v in entity.items()}
            if use_included:
                included.append(full)
                return node
            return full
        return {k: expand(v, False) for k, v in (trim(node) if top else node).items()}

    with state.lock:
        result = expand(copy.deepcopy(data), True) if not isinstance(data, list) else \
            [expand(copy.deepcopy(item), True) for item in data]
    return result, (included if use_included else None)


def paginate(items: list, params: dict) -> tuple[list, dict]:
    limit = params.get("limit", 100)
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ApiError(422, "limit must be an integer from 1 to 100")
    sort = params.get("sortBy") or []
    for rule in reversed(sort if isinstance(sort, list) else []):
        name = rule.get("fieldName", "id") if isinstance(rule, dict) else "id"
        if name not in SORTABLE:  # the RAML marks no `id` sort: refuse it, as a strict server may
            raise ApiError(422, f"Field {name} is not sortable")
        items = sorted(items, key=lambda e: _sort_key(e.get(name)), reverse=bool(rule.get("desc")))
    after = params.get("pageAfter")
    if isinstance(after, dict) and after.get("id") is not None:
        ids = [str(e["id"]) for e in items]
        if str(after["id"]) in ids:
            items = items[ids.index(str(after["id"])) + 1:]
    page = items[:limit]
    return page, {"count": len(items), "limit": limit, "hasMoreNext": len(items) > limit}


def _sort_key(value):
    if isinstance(value, dict):
        value = value.get("value", value.get("id"))
    if isinstance(value, str) and value.isdigit():
        return (0, int(value), "")
    return (1, 0, str(value))
