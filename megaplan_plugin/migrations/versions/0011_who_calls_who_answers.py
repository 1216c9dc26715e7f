"""Who is calling and who should answer: the account's choice for a number several clients
share, the index of open deals, employees' absence, the customer's rating, the client a call
was written with, and the routing settings that use them.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)
_UNNOTED = "noted_at IS NULL"


def upgrade():
    op.create_table(
        "megaplan_number_choice",
        sa.Column("credential_id", sa.Integer, sa.ForeignKey("megaplan_credential.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("national", sa.String(20), primary_key=True),
        sa.Column("contractor_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300)),
        sa.Column("chosen_at", _TIME, nullable=False))
    op.create_table(
        "megaplan_deal",
        sa.Column("credential_id", sa.Integer, sa.ForeignKey("megaplan_credential.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("deal_id", sa.String(32), primary_key=True),
        sa.Column("contractor_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300)),
        sa.Column("manager_id", sa.String(32)),
        sa.Column("megaplan_updated_at", sa.String(40)))
    op.create_index("ix_megaplan_deal_contractor", "megaplan_deal", ["credential_id", "contractor_id"])
    op.create_table(
        "megaplan_call_rating",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(128), primary_key=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("noted_at", _TIME))
    op.create_index("ix_megaplan_call_rating_unnoted", "megaplan_call_rating", ["account_id"],
                    sqlite_where=sa.text(_UNNOTED), postgresql_where=sa.text(_UNNOTED))
    with op.batch_alter_table("megaplan_employee") as batch:
        batch.add_column(sa.Column("working", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("fire_day", sa.String(10)))
        batch.add_column(sa.Column("vacation_first", sa.String(10)))
        batch.add_column(sa.Column("vacation_last", sa.String(10)))
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("contractor_id", sa.String(32)))
    op.create_index("ix_megaplan_outbox_contractor", "megaplan_outbox", ["account_id", "contractor_id", "started_at"])
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("link_open_deal", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deal_manager_first", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("route_fallback", sa.String(8), nullable=False, server_default="pbx"))
        batch.add_column(sa.Column("route_respect_hours", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        for column in ("route_respect_hours", "route_fallback", "deal_manager_first", "link_open_deal"):
            batch.drop_column(column)
    op.drop_index("ix_megaplan_outbox_contractor", table_name="megaplan_outbox")
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.drop_column("contractor_id")
    with op.batch_alter_table("megaplan_employee") as batch:
        for column in ("vacation_last", "vacation_first", "fire_day", "working"):
            batch.drop_column(column)
    op.drop_index("ix_megaplan_call_rating_unnoted", table_name="megaplan_call_rating")
    op.drop_table("megaplan_call_rating")
    op.drop_index("ix_megaplan_deal_contractor", table_name="megaplan_deal")
    op.drop_table("megaplan_deal")
    op.drop_table("megaplan_number_choice")
