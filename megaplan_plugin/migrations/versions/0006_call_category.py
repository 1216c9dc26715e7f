"""A credential remembers its account's todo category for calls (read with the employees).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_credential") as batch:
        batch.add_column(sa.Column("call_category_id", sa.String(32)))


def downgrade():
    with op.batch_alter_table("megaplan_credential") as batch:
        batch.drop_column("call_category_id")
