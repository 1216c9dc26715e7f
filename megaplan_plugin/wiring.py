"""Wiring the plugin into the host application (``cabinet_init_app``)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import click
from flask import Flask
from flask.cli import AppGroup

from megaplan_plugin import cabinet
from megaplan_plugin import migrations
from megaplan_plugin.config import init_config
from megaplan_plugin.delivery import queues
from megaplan_plugin.calls.rules import HookSettingsCache
from megaplan_plugin.calls.routing import RouteCache, RouteRefresher
from megaplan_plugin.web.play_counts import PlayCounts

log = logging.getLogger(__name__)


@dataclass
class PluginState:
    """What the plugin keeps per app (``app.extensions["megaplan"]``)."""

    redis: object
    embedded: bool
    hook_settings: HookSettingsCache = field(default_factory=HookSettingsCache)
    routes: RouteCache = field(default_factory=RouteCache)
    route_refresher: RouteRefresher = field(default_factory=RouteRefresher)
    runner: object = None
    side_engine: object = None  # see connection.side_engine
    plays: PlayCounts = field(default_factory=PlayCounts)

    def dispose(self) -> None:
        """Close the plugin's own database connections (an app being torn down, as in tests)."""
        self.plays.close()
        self.routes.dispose()
        if self.side_engine is not None:
            self.side_engine.dispose()
            self.side_engine = None


def init_app(app: Flask, host) -> None:
    init_config(app)
    embedded = not app.config["REDIS_URL"]
    redis = queues.connect(app.config["REDIS_URL"])
    state = PluginState(redis=redis, embedded=embedded, hook_settings=HookSettingsCache(redis=redis))
    app.extensions["megaplan"] = state
    if app.config["MEGAPLAN_AUTO_MIGRATE"]:
        with app.app_context():
            migrations.upgrade(host.db.engine)

    from megaplan_plugin.web import api_errors  # noqa: F401  (the API's catch-all for unknown addresses)
    from megaplan_plugin.web.telephony_api import bp as api_bp
    from megaplan_plugin.web.settings import bp
    from megaplan_plugin.web.journal import bp as journal_bp
    from megaplan_plugin.web.recordings import bp as recordings_bp
    from megaplan_plugin.web.callbacks import bp as callbacks_bp
    from megaplan_plugin.web.numbers import bp as numbers_bp
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(journal_bp)
    app.register_blueprint(recordings_bp)
    app.register_blueprint(callbacks_bp)
    app.register_blueprint(numbers_bp)
    # Machines call the API with their own secret; CSRF tokens are for browsers.
    if "csrf" in app.extensions:
        app.extensions["csrf"].exempt(api_bp)
    app.cli.add_command(megaplan_cli)

    if embedded and app.config["MEGAPLAN_EMBEDDED_WORKER"]:
        from megaplan_plugin.delivery.embedded import Embedded
        state.runner = Embedded(app, state.redis)
        state.runner.start()


@click.group("megaplan", cls=AppGroup)
def megaplan_cli():
    """Интеграция с Мегаплан."""


@megaplan_cli.command("resend")
def resend_command():
    """Queue again what the database holds and Redis lost (the periodic sweep, once)."""
    from megaplan_plugin.delivery.outbox import sweep
    counts = sweep(cabinet.db())
    click.echo(json.dumps(counts, ensure_ascii=False))


@megaplan_cli.command("scheduler")
def scheduler_command():
    """Move scheduled jobs (popup retries, writers coming back) into their queues, in the
    foreground until SIGTERM or Ctrl-C: run one under the supervisor (a second is a standby)."""
    import signal
    import threading

    from flask import current_app
    from megaplan_plugin.delivery.scheduler import LOCK_SECONDS, Scheduler
    state = current_app.extensions["megaplan"]
    if state.embedded:
        raise click.UsageError("без REDIS_URL планировщик работает внутри приложения: отдельный процесс не нужен")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    scheduler = Scheduler(state.redis)
    click.echo(f"megaplan scheduler {scheduler.token}: moving due jobs of {', '.join(scheduler.queue_names)}"
               f" (another one takes over within {LOCK_SECONDS} s if this one dies)")
    scheduler.run(stopping)


@megaplan_cli.command("reconcile")
@click.option("--since", help="ISO date-time (UTC if no zone); default: where the last run ended")
@click.option("--until", help="ISO date-time; default: now")
def reconcile_command(since, until):
    """Find calls in the PBX history that never reached the plugin and send them."""
    from megaplan_plugin.delivery.reconcile import reconcile_all
    found = reconcile_all(cabinet.host(), since=_utc(since), until=_utc(until))
    click.echo(json.dumps({"found": found}, ensure_ascii=False))


def _utc(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"не дата и время ISO 8601: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@megaplan_cli.group("db")
def db_cli():
    """Схема таблиц интеграции (Alembic, своя таблица версий)."""


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Bring the plugin's tables to REVISION (default: the newest)."""
    migrations.upgrade(cabinet.db().engine, revision)
    with cabinet.db().engine.connect() as conn:
        click.echo(f"megaplan schema at revision {migrations.current(conn)}")


@db_cli.command("current")
def db_current():
    """Show the revision the plugin's tables are at."""
    with cabinet.db().engine.connect() as conn:
        click.echo(migrations.current(conn) or "none")
