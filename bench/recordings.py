"""Recordings through the plugin's own link against the PBX store's own link (issue 25).

Run: .venv/bin/python bench/recordings.py [--players 20] [--rounds 20] [--calls 4] [--mb 5] [--mode production|embedded]

--calls answered calls whose recordings are --mb MB each (written into the stack's PBX store, as
the PBX keeps them), written to Megaplan (the sandbox in its own process) with the plugin's links. Then
--rounds times --players threads each fetch one of --calls recordings, whole, over HTTP from the cabinet's
real web server (`flask run`):
  baseline: the PBX's own public link (`/pbx/<account>/recordings/<call>`: the file, no checks);
  ours: the plugin's link (`/plugins/megaplan/recordings/<token>`: token, account, retention,
        rate limit, play count, then the PBX's authenticated download by range).
Goals: ours' throughput >= 0.8x the baseline's; ours' time to first byte p99 <= 2x the baseline's.
The two are measured in alternating rounds, so a machine that slows down slows both.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import Pusher, Stack, code_line, history_fields, machine, percentiles, wait_until  # noqa: E402

GOAL_THROUGHPUT, GOAL_TTFB = 0.8, 2.0


def fetch(session: requests.Session, url: str) -> tuple[float, int]:
    """(seconds to the first byte, bytes) of one whole download."""
    started = time.monotonic()
    with session.get(url, stream=True, timeout=120) as response:
        response.raise_for_status()
        chunks = response.iter_content(64 * 1024)
        first = next(chunks, b"")
        ttfb = time.monotonic() - started
        return ttfb, len(first) + sum(len(c) for c in chunks)


def round_of(url: str, players: int, per_player: int) -> dict:
    def player(_):
        session = requests.Session()
        session.trust_env = False
        return [fetch(session, url) for _ in range(per_player)]
    started = time.monotonic()
    with ThreadPoolExecutor(players) as pool:
        results = [r for rs in pool.map(player, range(players)) for r in rs]
    wall = time.monotonic() - started
    return {"wall": wall, "bytes": sum(b for _, b in results), "ttfb": [t for t, _ in results]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of --players fetches of each kind of link")
    parser.add_argument("--calls", type=int, default=4, help="recordings fetched in turn (players x rounds / calls + 2 <= 120: the rate limit per link and minute)")
    parser.add_argument("--mb", type=int, default=5)
    parser.add_argument("--mode", choices=["production", "embedded"], default="embedded")
    args = parser.parse_args()
    started = time.monotonic()
    print("bench/recordings.py: recordings through the plugin's link vs the PBX store's own link")
    print(f"goals: throughput >= {GOAL_THROUGHPUT}x the store's; time to first byte p99 <= {GOAL_TTFB}x the store's")
    print(code_line())
    with Stack(args.mode) as stack:
        stack.start_sandbox()
        stack.start_web()
        stack.configure_demo()
        if args.mode == "production":
            stack.start_production_workers(sync_workers=1)
        print(machine(args.mode, stack))
        app = stack.app()
        pbx = app.extensions["cabinet"].pbx
        # Several calls, so that enough rounds fit in the per-link rate limit of a minute; a round
        # fetches one call's recording, by its PBX link and by ours, in turn.
        links = []
        block = bytes(range(256)) * 4096
        for _ in range(args.calls):
            call_id = uuid.uuid4().hex.upper()
            pbx.recordings.keep("demo", call_id, "audio/mpeg", (block for _ in range(args.mb)), pbx.now())
            fields = history_fields(call_id)
            fields["link"] = f"{stack.web_url}/pbx/demo/recordings/{call_id}"
            Pusher(stack.web_url).push(**fields)
            links.append((call_id, fields["link"]))
        calls = {}
        wait_until(lambda: calls.update({c["providerId"]: c["recordLinks"][0] for c in stack.sandbox_state()["calls"]
                                         if c.get("recordLinks")}) or len(calls) >= args.calls,
                   120, "the calls in Megaplan", interval=0.2, check=stack.check)
        # MEGAPLAN_PUBLIC_URL names the default port
        pairs = [(store, stack.web_url + urlsplit(calls[call_id]).path) for call_id, store in links]
        for store, ours in pairs:
            round_of(store, 2, 1), round_of(ours, 2, 1)  # warm both paths up
        totals = {"store": {"wall": 0.0, "bytes": 0, "ttfb": []}, "ours": {"wall": 0.0, "bytes": 0, "ttfb": []}}
        for n in range(args.rounds):
            store, ours = pairs[n % len(pairs)]
            for name, url in (("store", store), ("ours", ours)) if n % 2 == 0 else (("ours", ours), ("store", store)):
                r = round_of(url, args.players, 1)
                totals[name]["wall"] += r["wall"]
                totals[name]["bytes"] += r["bytes"]
                totals[name]["ttfb"] += r["ttfb"]
        print(f"{args.players} players, {args.rounds} rounds each, {args.calls} recordings of {args.mb} MB in turn, {args.mode} mode")
        print(f"    {'link':<44}{'MB/s':>8}{'TTFB p50 ms':>13}{'p99 ms':>9}")
        rate, p99 = {}, {}
        for name, label in (("store", "the PBX store's own link (baseline)"), ("ours", "the plugin's link")):
            t = totals[name]
            rate[name] = t["bytes"] / 2**20 / t["wall"]
            p = percentiles([x * 1000 for x in t["ttfb"]])
            p99[name] = p["p99"]
            print(f"    {label:<44}{rate[name]:>8.1f}{p['p50']:>13.1f}{p['p99']:>9.1f}")
        throughput, ttfb = rate["ours"] / rate["store"], p99["ours"] / p99["store"]
        print(f"    throughput ours / store: {throughput:.2f}x (goal >= {GOAL_THROUGHPUT}) "
              f"{'met' if throughput >= GOAL_THROUGHPUT else 'NOT met'}")
        print(f"    TTFB p99 ours / store: {ttfb:.2f}x (goal <= {GOAL_TTFB}) {'met' if ttfb <= GOAL_TTFB else 'NOT met'}")
    print(f"total run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
