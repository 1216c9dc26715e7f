"""When the integration was last switched on: reconciliation does not reach back past it on its
own, so the time it was off stays the admin's to send («Передать звонки за время отключения»)
or not.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("activated_at", sa.DateTime(timezone=True)))


def downgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.drop_column("activated_at")
