"""When the integration was switched off: the calls of that time can be sent once it is on
again («Передать звонки за время отключения»).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("deactivated_at", sa.DateTime(timezone=True)))


def downgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.drop_column("deactivated_at")
