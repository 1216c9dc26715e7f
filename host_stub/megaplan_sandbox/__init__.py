"""The Megaplan sandbox: a fake Megaplan API v3 for demos and tests (state in memory).

``serve()`` runs it over real HTTP on 127.0.0.1; the stub host starts one at
``MEGAPLAN_SANDBOX_PORT`` for the demo. Log in with ``admin@sandbox.megaplan.ru`` / ``sandbox-secret-42``.
"""
from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from .state import SandboxState

__all__ = ["SandboxServer", "SandboxState", "create_sandbox_app", "serve"]


def create_sandbox_app(state: SandboxState | None = None) -> Flask:
    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.extensions["megaplan_sandbox"] = state or SandboxState()
    from . import api, page, telephony_app
    app.secret_key = "megaplan-sandbox"  # only for its own flash messages
    # Cookies do not separate ports: under the cabinet's name it would log the cabinet out.
    app.config["SESSION_COOKIE_NAME"] = "megaplan_sandbox_session"
    app.register_blueprint(api.bp)
    app.register_blueprint(api.files_bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(telephony_app.bp)
    app.wsgi_app = api.lose_answers(app.wsgi_app, app.extensions["megaplan_sandbox"])
    return app


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass  # thousands of test requests would drown the output; the page shows what came


class SandboxServer:
    def __init__(self, state: SandboxState, host: str, port: int):
        self.state = state
        self.app = create_sandbox_app(state)
        self._server = make_server(host, port, self.app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        # serve_forever's default 0.5 s poll is how long stop() would wait on it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="megaplan-sandbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    return SandboxServer(state or SandboxState(), host, port)
