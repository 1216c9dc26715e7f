"""Recordings behind the plugin's own links: a signing key per account and its generation,
«Хранить записи», and how often each call's recording was played.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("recording_key_enc", sa.Text))
        batch.add_column(sa.Column("recording_key_generation", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("recording_days", sa.Integer, server_default="90"))
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("recording_plays", sa.Integer, nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.drop_column("recording_plays")
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.drop_column("recording_days")
        batch.drop_column("recording_key_generation")
        batch.drop_column("recording_key_enc")
