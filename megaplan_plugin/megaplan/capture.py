"""A record of the API requests the client makes, one JSON object per line.

``MEGAPLAN_CAPTURE_FILE`` turns it on. Each line is ``{"method", "path", "query", "body"}``:
what Megaplan's schema judges (the repository's
``python -m host_stub.megaplan_sandbox.schema FILE`` checks a capture against it). Headers are
never written and the token request never reaches here, so the file holds no password or
token; it does hold clients' names and numbers, so keep it as private as the database.
"""
from __future__ import annotations

import json
import os
import threading

_lock = threading.Lock()


class Capture:
    def __init__(self, path: str):
        self.path = path

    def write(self, method: str, path: str, query: dict | None, body) -> None:
        line = json.dumps({"method": method, "path": path, "query": query, "body": body},
                          ensure_ascii=False, default=str) + "\n"
        # One write of an O_APPEND descriptor per line: lines of several processes never mix.
        with _lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
