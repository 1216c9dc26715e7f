"""The cabinet stub host: a small but honest stand-in for the MegaFon virtual-PBX cabinet."""
from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event

from .config import load_config
from .db import db
from .host import Host
from .plugins import make_plugin_manager

__all__ = ["create_app"]

csrf = CSRFProtect()


def create_app(config: dict | None = None, plugins=None) -> Flask:
    """Build the cabinet. ``plugins`` replaces entry-point discovery (tests pass them explicitly)."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder="../templates", static_folder="../static")
    load_config(app)
    if config:
        app.config.update(config)
    db.init_app(app)
    csrf.init_app(app)

    from . import pbx_views, views
    app.register_blueprint(views.bp)
    app.register_blueprint(pbx_views.bp)
    csrf.exempt(pbx_views.push)

    host = Host(app, make_plugin_manager(plugins))
    app.extensions["cabinet"] = host
    host.pm.hook.cabinet_init_app(app=app, host=host)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        db.create_all()
        for metadata in host.plugin_tables:
            metadata.create_all(db.engine)
        from .seed import seed_demo_data
        seed_demo_data()
    _start_sandbox(app)
    return app


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The embedded default serves a web thread, a worker thread and the sweeper at once:
    # WAL lets them read while one writes, and NORMAL sync keeps a commit off the fsync path.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _start_sandbox(app: Flask) -> None:
    port = app.config["MEGAPLAN_SANDBOX_PORT"]
    if not port:
        return
    from .megaplan_sandbox import serve
    app.extensions["megaplan_sandbox"] = serve(port=port)
