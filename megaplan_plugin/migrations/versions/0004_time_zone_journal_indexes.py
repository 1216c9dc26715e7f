"""The account's time zone; journal indexes that serve its filters and counts.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=False, server_default="Europe/Moscow"))
    op.drop_index("ix_megaplan_outbox_account_started", table_name="megaplan_outbox")
    op.create_index("ix_megaplan_outbox_journal", "megaplan_outbox", ["account_id", "kind", "started_at"])
    op.create_index("ix_megaplan_outbox_journal_state", "megaplan_outbox",
                    ["account_id", "kind", "state", "started_at"])


def downgrade():
    op.drop_index("ix_megaplan_outbox_journal_state", table_name="megaplan_outbox")
    op.drop_index("ix_megaplan_outbox_journal", table_name="megaplan_outbox")
    op.create_index("ix_megaplan_outbox_account_started", "megaplan_outbox", ["account_id", "started_at"])
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.drop_column("time_zone")
