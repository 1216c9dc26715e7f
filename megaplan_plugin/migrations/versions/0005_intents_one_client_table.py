"""Durable intents before every create; one table of clients; the outbox without enqueued_at.

Revision ID: 0005
Revises: 0004

``megaplan_client`` (the per-account cache of numbers) is folded into ``megaplan_client_phone``:
its clients are copied there for the account's credential, so routing keeps knowing them.
``enqueued_at`` was the sweep's mark of rows handed to Redis; the sweep now wakes the writer of
every account with work, so nothing reads it.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "megaplan_intent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("megaplan_id", sa.String(64)),
        sa.Column("megaplan_type", sa.String(32)),
        sa.Column("busy_until", TZ),
        sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("account_id", "kind", "key", name="uq_megaplan_intent_key"),
    )
    op.create_index("ix_megaplan_intent_megaplan_id", "megaplan_intent", ["account_id", "kind", "megaplan_id"])
    op.create_index("ix_megaplan_outbox_work", "megaplan_outbox", ["kind", "state", "account_id"])
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("client_name", sa.String(300)))
        batch.drop_column("enqueued_at")
    # The cached clients move into the index of the account's credential (national number =
    # the PBX number without its country code 7, as phones.national reads Russian numbers).
    op.execute(sa.text(
        "INSERT INTO megaplan_client_phone (credential_id, national, contractor_type, contractor_id, "
        "name, responsible_id, seen_at) "
        "SELECT s.credential_id, substr(c.phone, 2), c.contractor_type, c.contractor_id, c.name, "
        "c.responsible_id, c.updated_at FROM megaplan_client c "
        "JOIN megaplan_settings s ON s.account_id = c.account_id "
        "WHERE s.credential_id IS NOT NULL AND c.contractor_id IS NOT NULL "
        "AND length(c.phone) = 11 AND substr(c.phone, 1, 1) = '7' "
        "AND NOT EXISTS (SELECT 1 FROM megaplan_client_phone p WHERE p.credential_id = s.credential_id "
        "AND p.contractor_id = c.contractor_id AND p.national = substr(c.phone, 2))"))
    op.drop_table("megaplan_client")


def downgrade():
    op.create_table(
        "megaplan_client",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("contractor_type", sa.String(32)),
        sa.Column("contractor_id", sa.String(32)),
        sa.Column("name", sa.String(300)),
        sa.Column("responsible_id", sa.String(32)),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("account_id", "phone"),
    )
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("enqueued_at", TZ))
        batch.drop_column("client_name")
    op.drop_index("ix_megaplan_outbox_work", table_name="megaplan_outbox")
    op.drop_index("ix_megaplan_intent_megaplan_id", table_name="megaplan_intent")
    op.drop_table("megaplan_intent")
