"""Alembic environment of the plugin: its own tables, its own version table."""
from alembic import context

from megaplan_plugin.migrations import VERSION_TABLE, include_object
from megaplan_plugin.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  version_table=VERSION_TABLE, include_object=include_object,
                  render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
