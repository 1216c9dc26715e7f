"""The Megaplan client's own overhead, as production builds it (issues 4, 16).

Run: .venv/bin/python bench/client.py [--requests 2000]

The client is the one jobs use: `client_for(credential)` (megaplan_plugin.connection, or
megaplan_plugin.calls.connection since the package split) inside an
app context on PostgreSQL (a fresh database), with the real token store (tokens encrypted in
the credential's row, refresh locks in Redis db 11), against the Megaplan sandbox in its own
process (`python -m host_stub.megaplan_sandbox`). The credential is stored the way the
settings page stores it (`check_and_store_credential` of the plugin's settings store).
Baseline, same run: raw `requests.Session` GETs of the same URL with the same access token and
the client's own headers (so both ask for the same rendering).
Both sides run in alternating halves so that drift of the machine hits them alike.
Goal: raw rate / client rate <= 1.3.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402

from _procs import (SANDBOX_LOGIN, SANDBOX_PASSWORD, CpuMeter, Stack, code_line, machine,  # noqa: E402
                    plugin_module, settings_store)


def rate(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per side")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two sides")
    args = parser.parse_args()
    print("bench/client.py: Megaplan client from client_for() (PostgreSQL token store) vs raw "
          "requests.Session, GET /api/v3/currentUser on the sandbox in its own process")
    print("goal: raw rate / client rate <= 1.30")
    print(code_line())
    from host_stub.db import db
    from megaplan_plugin.models import Credential
    account_settings = settings_store()
    # megaplan_plugin.connection (megaplan_plugin.calls.connection since the package split)
    client_for = plugin_module("megaplan_plugin.calls.connection", "megaplan_plugin.connection").client_for

    with Stack("production") as stack:
        stack.start_sandbox()
        print(machine("production"))
        app = stack.app()
        with app.app_context():
            result = account_settings.check_and_store_credential(
                "demo", title="Песочница", login=SANDBOX_LOGIN, password=SANDBOX_PASSWORD,
                domain=stack.sandbox_url)
            assert result.credential is not None, result.error
            credential_id = result.credential.id
            credential = db.session.get(Credential, credential_id)
            client = client_for(credential)
            client.current_user()
            store = type(client.tokens).__name__
            raw = requests.Session()
            # The same request on the wire: the client's headers (Accept, User-Agent and
            # X-USE-INCLUDED-RESPONSE, which changes how the sandbox renders the answer).
            for name in ("Accept", "User-Agent", "X-USE-INCLUDED-RESPONSE"):
                if name in client.session.headers:
                    raw.headers[name] = client.session.headers[name]
            raw.headers["Authorization"] = "Bearer " + client.tokens.load().access_token
            url = stack.sandbox_url + "/api/v3/currentUser"

            def raw_get():
                response = raw.get(url, timeout=(3.05, 15))
                response.raise_for_status()
                response.json()

            def as_a_job():
                # What a job adds: a new session, the credential read, client_for's cache.
                db.session.remove()
                client_for(db.session.get(Credential, credential_id)).current_user()

            raw_get()
            per_round = max(1, args.requests // args.rounds)
            rates = {"raw": [], "client": [], "job": []}
            meter = CpuMeter(stack)
            before = meter.snapshot()
            for _ in range(args.rounds):
                rates["raw"].append(rate(raw_get, per_round))
                rates["client"].append(rate(client.current_user, per_round))
                rates["job"].append(rate(as_a_job, max(1, per_round // 4)))
            usage = CpuMeter.between(before, meter.snapshot())
            db.session.remove()
    raw_rate, client_rate, job_rate = (sum(rates[k]) / len(rates[k]) for k in ("raw", "client", "job"))
    print(f"requests: {per_round * args.rounds} per side in {args.rounds} alternating rounds; "
          f"token store: {store}")
    print(f"{'what':<58}{'req/s':>9}{'vs raw':>9}")
    print(f"{'raw requests.Session GET, same headers (baseline)':<58}{raw_rate:>9.1f}{1:>9.2f}")
    print(f"{'client_for(credential).current_user()':<58}{client_rate:>9.1f}{raw_rate / client_rate:>9.2f}")
    print(f"{'  as a job: new session + credential read + client_for':<58}{job_rate:>9.1f}"
          f"{raw_rate / job_rate:>9.2f}")
    spread = {k: f"{min(v):.0f}–{max(v):.0f}" for k, v in rates.items()}
    print(f"per-round range: raw {spread['raw']}, client {spread['client']}, job {spread['job']} req/s")
    ratio = raw_rate / client_rate
    print(f"overhead ratio (raw / client): {ratio:.2f} (goal <= 1.30) {'met' if ratio <= 1.3 else 'NOT met'}")
    print(CpuMeter.describe(usage))


if __name__ == "__main__":
    main()
