"""«Копировать записи в Мегаплан»: the account's choice, and each call's copy (its state, the
Megaplan file, tries and when the next is due).

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("copy_recordings", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("copy_state", sa.String(16)))
        batch.add_column(sa.Column("copy_file_id", sa.String(32)))
        batch.add_column(sa.Column("copy_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("copy_next_at", sa.DateTime(timezone=True)))
    op.create_index("ix_megaplan_outbox_copy", "megaplan_outbox", ["copy_state", "copy_next_at"])


def downgrade():
    op.drop_index("ix_megaplan_outbox_copy", table_name="megaplan_outbox")
    with op.batch_alter_table("megaplan_outbox") as batch:
        for column in ("copy_next_at", "copy_attempts", "copy_file_id", "copy_state"):
            batch.drop_column(column)
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.drop_column("copy_recordings")
