"""Wiring the plugin into the host application (``cabinet_init_app``)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import click
from flask import Flask
from flask.cli import AppGroup

from . import queue as queues
from .hook_settings import HookSettingsCache
from .models import Base
from .routing import RouteCache

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 30


@dataclass
class PluginState:
    """What the plugin keeps per app (``app.extensions["megaplan"]``)."""

    redis: object
    embedded: bool
    hook_settings: HookSettingsCache = field(default_factory=HookSettingsCache)
    routes: RouteCache = field(default_factory=RouteCache)
    threads: list = field(default_factory=list)


def init_app(app: Flask, host) -> None:
    app.config.setdefault("MEGAPLAN_EMBEDDED_WORKER", True)
    app.config.setdefault("MEGAPLAN_ALLOW_HTTP", False)
    embedded = not app.config.get("REDIS_URL")
    state = PluginState(redis=queues.connect(app.config.get("REDIS_URL")), embedded=embedded)
    app.extensions["megaplan"] = state
    host.add_tables(Base.metadata)

    from .api import bp as api_bp
    from .api import json_routing_errors
    from .blueprint import bp
    from .journal import bp as journal_bp
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(journal_bp)
    app.register_error_handler(404, json_routing_errors)
    app.register_error_handler(405, json_routing_errors)
    # Machines call the API with their own secret; CSRF tokens are for browsers.
    if "csrf" in app.extensions:
        app.extensions["csrf"].exempt(api_bp)
    app.cli.add_command(megaplan_cli)

    if embedded and app.config["MEGAPLAN_EMBEDDED_WORKER"]:
        from .worker import start_embedded_worker
        state.threads.append(start_embedded_worker(app, state.redis))
        state.threads.append(_start_sweeper(app, host))


def _start_sweeper(app: Flask, host) -> threading.Thread:
    from .outbox import sweep

    def run():
        while True:
            time.sleep(SWEEP_EVERY_SECONDS)
            try:
                with app.app_context():
                    sweep(host.db)
            except Exception:
                log.exception("megaplan sweeper failed")
    thread = threading.Thread(target=run, name="megaplan-sweeper", daemon=True)
    thread.start()
    return thread


@click.group("megaplan", cls=AppGroup)
def megaplan_cli():
    """Интеграция с Мегаплан."""


@megaplan_cli.command("resend")
def resend_command():
    """Queue again every call the database holds that Redis does not (run it from cron)."""
    from flask import current_app

    from .outbox import sweep
    counts = sweep(current_app.extensions["cabinet"].db)
    click.echo(f"queued calls: {counts['calls']}, live events: {counts['events']}, "
               f"stale live events dropped: {counts['stale_events']}")
