"""The cabinet stub host: a small but honest stand-in for the MegaFon virtual-PBX cabinet."""
from __future__ import annotations

from html import escape

from flask import Flask, current_app, has_request_context, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event, inspect, text
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from megaplan_plugin import dblock

from .config import load_config, proxy_count
from .db import db, sqlite_pragmas
from .host import Host
from .plugins import make_plugin_manager
from .ratelimit import LoginLimiter

__all__ = ["create_app"]

csrf = CSRFProtect()


def create_app(config: dict | None = None, plugins=None) -> Flask:
    """Build the cabinet. ``plugins`` replaces entry-point discovery (tests pass them explicitly)."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder="../templates", static_folder="../static")
    load_config(app)
    if config:
        app.config.update(config)
    _harden(app)
    db.init_app(app)
    csrf.init_app(app)
    app.extensions["cabinet_ratelimit"] = LoginLimiter.from_config(app.config)

    from . import pbx_views, views
    app.register_blueprint(views.bp)
    app.register_blueprint(pbx_views.bp)
    csrf.exempt(pbx_views.push)

    host = Host(app, make_plugin_manager(plugins))
    app.extensions["cabinet"] = host
    host.pm.hook.cabinet_init_app(app=app, host=host)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", sqlite_pragmas)
        # Several processes (web workers, RQ workers) may start at once on an empty database:
        # one at a time creates the tables and the demo data, the others then find them.
        with dblock.exclusive(db.engine, "host_stub.create_app"):
            db.create_all()
            for metadata in host.plugin_tables:
                metadata.create_all(db.engine)
            _add_missing_columns()
            from .seed import seed_demo_data
            seed_demo_data(host.pbx.store)
    _start_sandbox(app)
    return app


# -- HTTP hardening ---------------------------------------------------------------------------

# No page of the cabinet or its plugin uses inline script or style (tests/test_door.py checks).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
# Answers in JSON to a body over the limit: machines call these, not browsers.
JSON_PREFIXES = ("/pbx/", "/plugins/megaplan/api/")


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def _harden(app: Flask) -> None:
    proxies = app.config.get("CABINET_TRUST_PROXY") or 0
    proxies = proxy_count(proxies) if isinstance(proxies, str) else int(proxies)
    if proxies:
        # Only behind a proxy that sets these headers; otherwise clients could claim HTTPS.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    app.session_interface = _SessionInterface()
    app.before_request(_refuse_oversized)
    app.after_request(_security_headers)
    app.register_error_handler(413, _too_large)


def _refuse_oversized():
    """A declared length over the limit is refused before authentication or a database query;
    a body without a length (chunked) is still cut off by werkzeug when a view reads it."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:  # over plain HTTP the header means nothing and browsers ignore it
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _too_large(exc):
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    message = (f"Слишком большой запрос: не больше {limit} байт." if limit
               else "Слишком большой запрос.")
    if request.path.startswith(JSON_PREFIXES):
        return jsonify(error="payload_too_large", message=message), 413
    page = ('<!doctype html><html lang="ru"><head><meta charset="utf-8">'
            "<title>Слишком большой запрос</title></head><body>"
            f"<h1>Слишком большой запрос</h1><p>{escape(message)}</p></body></html>")
    return page, 413, {"Content-Type": "text/html; charset=utf-8"}


# -- start-up ---------------------------------------------------------------------------------

def _add_missing_columns() -> None:
    """Columns added after a database was created (the stub host has no migrations)."""
    columns = {c["name"] for c in inspect(db.engine).get_columns("cabinet_account")}
    if "session_epoch" not in columns:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE cabinet_account "
                              "ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0"))


def _start_sandbox(app: Flask) -> None:
    port = app.config["MEGAPLAN_SANDBOX_PORT"]
    if not port:
        return
    from .megaplan_sandbox import serve
    app.extensions["megaplan_sandbox"] = serve(port=port)
