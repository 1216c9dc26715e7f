"""The Megaplan sandbox in a process of its own: ``python -m host_stub.megaplan_sandbox --port N``.

Serves until SIGTERM or SIGINT. Prints ``serving http://HOST:PORT`` once it listens (``--port 0``
picks a free port). Besides the sandbox's own pages (``/``, ``GET /_sandbox/state``,
``POST /_sandbox/faults``) it answers ``GET /_sandbox/probe``: request counts and the arrival
time of every CallInfo write, for benchmarks that run the cabinet in other processes.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from . import QuietHandler, create_sandbox_app, probe
from .state import SandboxState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m host_stub.megaplan_sandbox",
                                     description="Serve the Megaplan sandbox until SIGTERM/SIGINT.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--latency-ms", type=float, default=0, help="added to every API request")
    parser.add_argument("--log-requests", action="store_true")
    args = parser.parse_args(argv)

    state = SandboxState()
    state.set_latency(args.latency_ms)
    app = create_sandbox_app(state)
    probe.install(app)
    handler = WSGIRequestHandler if args.log_requests else QuietHandler
    server = make_server(args.host, args.port, app, threaded=True, request_handler=handler)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="megaplan-sandbox",
                              daemon=True)
    thread.start()
    print(f"serving http://{args.host}:{server.server_port}", flush=True)
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():
                sys.exit(1)
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
