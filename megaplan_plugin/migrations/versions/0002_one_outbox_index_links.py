"""One outbox (popups too, reconciliation), the client index, hand-made employee links.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NEW_CALL_COLUMNS = [
    sa.Column("kind", sa.String(8), nullable=False, server_default="call"),
    sa.Column("source", sa.String(16), nullable=False, server_default="push"),
    sa.Column("next_retry_at", TZ),
    sa.Column("callback_todo_id", sa.String(32)),
    sa.Column("callback_closed_by", sa.String(128)),
]


def upgrade():
    # A call's key is now (account, PBX call id, kind): a popup kept in the outbox has its own row.
    # The old unique constraint has a name on PostgreSQL and on databases made by 0001, but none
    # on SQLite files made by create_all: batch mode rebuilds the table from this definition.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("megaplan_call", recreate="always", copy_from=_call_table_0001()) as batch:
            for column in NEW_CALL_COLUMNS:
                batch.add_column(column)
            batch.create_unique_constraint("uq_megaplan_call_key", ["account_id", "call_id", "kind"])
    else:
        for column in NEW_CALL_COLUMNS:
            op.add_column("megaplan_call", column)
        op.drop_constraint("megaplan_call_account_id_call_id_key", "megaplan_call", type_="unique")
        op.create_unique_constraint("uq_megaplan_call_key", "megaplan_call", ["account_id", "call_id", "kind"])
    op.create_index("ix_megaplan_call_account_started", "megaplan_call", ["account_id", "started_at"])
    # Popups that could not be queued are outbox rows now; the old ones are long stale.
    op.drop_table("megaplan_deferred_event")

    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("reconciled_at", TZ))
        batch.add_column(sa.Column("reconciled_until", TZ))
        batch.add_column(sa.Column("reconcile_found", sa.Integer))

    op.create_table(
        "megaplan_client_phone",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("credential_id", sa.Integer,
                  sa.ForeignKey("megaplan_credential.id", ondelete="CASCADE"), nullable=False),
        sa.Column("national", sa.String(20), nullable=False),
        sa.Column("contractor_type", sa.String(32), nullable=False),
        sa.Column("contractor_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300)),
        sa.Column("responsible_id", sa.String(32)),
        sa.Column("megaplan_updated_at", sa.String(40)),
        sa.Column("seen_at", TZ, nullable=False),
        sa.UniqueConstraint("credential_id", "contractor_id", "national",
                            name="uq_megaplan_client_phone_key"),
    )
    op.create_index("ix_megaplan_client_phone_lookup", "megaplan_client_phone", ["credential_id", "national"])
    op.create_table(
        "megaplan_employee_link",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("pbx_login", sa.String(64), nullable=False),
        sa.Column("megaplan_employee_id", sa.String(32), nullable=False),
        sa.Column("config_created_at", TZ),
        sa.UniqueConstraint("account_id", "pbx_login", name="uq_megaplan_employee_link_key"),
    )


def _call_table_0001() -> sa.Table:
    """megaplan_call as 0001 made it, less the (account, call) key this revision replaces."""
    return sa.Table(
        "megaplan_call", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("client_phone", sa.String(32), nullable=False),
        sa.Column("virtual_number", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("megaplan_call_id", sa.String(64)),
        sa.Column("enqueued_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Index("ix_megaplan_call_state", "state", "updated_at"),
    )


def downgrade():
    raise NotImplementedError("0002 is not reversible: the deferred popups it dropped are gone")
