"""The plugin's own schema history: Alembic revisions on a version table of its own.

``upgrade(engine)`` brings the plugin's tables (``megaplan_*``) to the newest revision and
never touches the host's. A database made before the plugin had migrations (tables created
by ``create_all``, no version table) is recognised and stamped as revision 0001 first.
Several processes may start at once: one at a time migrates (an advisory lock on PostgreSQL,
a lock file beside a SQLite file).
"""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from megaplan_plugin import dblock

VERSION_TABLE = "megaplan_alembic_version"
BASELINE = "0001"


def include_object(obj, name, type_, reflected, compare_to):
    """Only the plugin's tables: the host's own are none of its business."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", "")
    return bool(table_name) and table_name.startswith("megaplan_") and table_name != VERSION_TABLE


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "megaplan_plugin:migrations")
    cfg.attributes["connection"] = connection
    return cfg


def current(connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine, revision: str = "head", *, create_fresh: bool = True) -> None:
    """Bring the plugin's tables to ``revision``.

    A database with none of the plugin's tables yet gets them from the models in one go and is
    stamped at the newest revision (Alembic's advice for new databases; the tests prove the
    models and the revisions agree); ``create_fresh=False`` replays every revision instead.
    """
    with dblock.exclusive(engine, "megaplan_plugin.migrations"), engine.begin() as connection:
        cfg = config(connection)
        tables = set(inspect(connection).get_table_names())
        if VERSION_TABLE not in tables and "megaplan_call" in tables:
            command.stamp(cfg, BASELINE)  # made by create_all before migrations existed
        elif create_fresh and revision == "head" and not any(t.startswith("megaplan_") for t in tables):
            from megaplan_plugin.models import Base
            Base.metadata.create_all(connection)
            command.stamp(cfg, "head")
            return
        command.upgrade(cfg, revision)
