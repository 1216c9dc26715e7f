"""The Megaplan client's own overhead (issue 4).

Run: .venv/bin/python bench/client.py [--requests 2000]
Requests per second of client.current_user() against the sandbox with no added latency, next
to raw requests.Session GETs of the same URL with the same token in the same run.
Goal: raw rate / client rate <= 1.3.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from host_stub.megaplan_sandbox import serve  # noqa: E402
from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD  # noqa: E402
from megaplan_plugin.megaplan import MegaplanClient  # noqa: E402


def rate(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with serve() as sandbox:
        client = MegaplanClient(sandbox.url, SANDBOX_LOGIN, SANDBOX_PASSWORD)
        client.current_user()
        raw = requests.Session()
        raw.headers["Authorization"] = "Bearer " + client.tokens.load().access_token
        url = sandbox.url + "/api/v3/currentUser"

        def raw_get():
            raw.get(url, timeout=(3.05, 15)).json()

        raw_get()
        # Interleave halves so that drift of the machine hits both sides alike.
        half = args.requests // 2
        rates = {"raw": [], "client": []}
        for _ in range(2):
            rates["raw"].append(rate(raw_get, half))
            rates["client"].append(rate(client.current_user, half))
        raw_rate, client_rate = (sum(rates[k]) / 2 for k in ("raw", "client"))
    print(f"requests: {args.requests} each")
    print(f"raw requests.Session GET   {raw_rate:8.1f} req/s")
    print(f"MegaplanClient.current_user {client_rate:8.1f} req/s")
    print(f"overhead ratio (raw / client): {raw_rate / client_rate:.2f} (goal <= 1.30)")


if __name__ == "__main__":
    main()
