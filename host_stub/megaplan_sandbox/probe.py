"""What a benchmark in another process needs to read of a sandbox: counts and receive times.

Registered only by ``python -m host_stub.megaplan_sandbox`` (not by ``create_sandbox_app``):

* every request under ``/api/v3`` is counted (the state's own request log keeps only the last
  20,000, so counts over a long run need a counter of their own);
* every write of a ``CallInfo`` (``POST /api/v3/callInfo``, ``/callInfo/provider``,
  ``/callInfo/<id>``) is stamped with ``time.time()`` when it arrives, before the sandbox's
  injected latency, with the ``providerId`` and ``state`` it carries (for an update of a call
  by its Megaplan id, the call's ``providerId`` is looked up).

``GET /_sandbox/probe`` answers ``{"requests": n, "by_route": {...}, "stamps": [...]}``;
``?since=K`` returns only stamps from index K on. It changes nothing in the sandbox.
"""
from __future__ import annotations

import re
import threading
import time

from flask import Blueprint, Flask, current_app, jsonify, request

bp = Blueprint("megaplan_sandbox_probe", __name__)
_ID = re.compile(r"/\d+")
_CALL_WRITE = re.compile(r"^/api/v3/callInfo(?:/(provider|\d+))?$")


class Probe:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_route: dict[str, int] = {}
        self.stamps: list[dict] = []

    def seen(self, method: str, path: str) -> None:
        route = method + " " + _ID.sub("/<id>", path)
        with self.lock:
            self.requests += 1
            self.by_route[route] = self.by_route.get(route, 0) + 1

    def stamp(self, entry: dict) -> None:
        with self.lock:
            self.stamps.append(entry)


def install(app: Flask) -> Probe:
    """Count and stamp on ``app``; call before the app serves its first request."""
    probe = Probe()
    app.extensions["megaplan_sandbox_probe"] = probe
    app.before_request(_before)  # app-level: runs before the API's own gate (and its latency)
    app.register_blueprint(bp)
    return probe


def _before():
    at = time.time()
    if not request.path.startswith("/api/v3/"):
        return None
    probe = current_app.extensions["megaplan_sandbox_probe"]
    probe.seen(request.method, request.path)
    match = _CALL_WRITE.match(request.path) if request.method == "POST" else None
    if match is None:
        return None
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    provider_id = body.get("providerId")
    if provider_id is None and match.group(1) not in (None, "provider"):
        call = current_app.extensions["megaplan_sandbox"].calls.get(match.group(1))
        provider_id = call.get("providerId") if call else None
    probe.stamp({"at": at, "path": request.path, "providerId": provider_id,
                 "state": body.get("state"), "create": match.group(1) is None})
    return None


@bp.get("/_sandbox/probe")
def read():
    probe = current_app.extensions["megaplan_sandbox_probe"]
    since = request.args.get("since", default=0, type=int)
    with probe.lock:
        return jsonify(requests=probe.requests, by_route=dict(probe.by_route),
                       stamps=probe.stamps[since:], stamp_count=len(probe.stamps))
