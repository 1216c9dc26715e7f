"""The schema of release 0.1.0, as ``create_all`` made it before the plugin had migrations.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "megaplan_call",
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
        sa.UniqueConstraint("account_id", "call_id", name="megaplan_call_account_id_call_id_key"),
    )
    op.create_index("ix_megaplan_call_state", "megaplan_call", ["state", "updated_at"])
    op.create_table(
        "megaplan_deferred_event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "megaplan_credential",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("login", sa.String(200), nullable=False),
        sa.Column("base_url", sa.String(255), nullable=False),
        sa.Column("password_enc", sa.Text, nullable=False),
        sa.Column("access_token_enc", sa.Text),
        sa.Column("refresh_token_enc", sa.Text),
        sa.Column("token_expires_at", TZ),
        sa.Column("megaplan_user_name", sa.String(200)),
        sa.Column("employees_fetched_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("account_id", "title", name="megaplan_credential_account_id_title_key"),
    )
    op.create_index("ix_megaplan_credential_account_id", "megaplan_credential", ["account_id"])
    op.create_table(
        "megaplan_settings",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("credential_id", sa.Integer, sa.ForeignKey("megaplan_credential.id")),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("filter_by_numbers", sa.Boolean, nullable=False),
        sa.Column("virtual_numbers", sa.JSON, nullable=False),
        sa.Column("default_responsible_id", sa.String(32)),
        sa.Column("route_to_manager", sa.Boolean, nullable=False),
        sa.Column("create_client_on_incoming", sa.Boolean, nullable=False),
        sa.Column("create_contact_on_outgoing", sa.Boolean, nullable=False),
        sa.Column("create_communication", sa.Boolean, nullable=False),
        sa.Column("communication_types", sa.JSON, nullable=False),
        sa.Column("save_unknown_employees", sa.Boolean, nullable=False),
        sa.Column("unknown_employee_user_id", sa.String(32)),
        sa.Column("api_key", sa.String(64), nullable=False, unique=True),
        sa.Column("api_secret_hash", sa.String(64)),
        sa.Column("api_secret_hint", sa.String(16)),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "megaplan_employee",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("credential_id", sa.Integer,
                  sa.ForeignKey("megaplan_credential.id", ondelete="CASCADE"), nullable=False),
        sa.Column("megaplan_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.String(200)),
        sa.Column("internal_number", sa.String(32)),
        sa.UniqueConstraint("credential_id", "megaplan_id",
                            name="megaplan_employee_credential_id_megaplan_id_key"),
    )
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
        sa.UniqueConstraint("account_id", "phone", name="megaplan_client_account_id_phone_key"),
    )


def downgrade():
    for table in ("megaplan_client", "megaplan_employee", "megaplan_settings",
                  "megaplan_credential", "megaplan_deferred_event", "megaplan_call"):
        op.drop_table(table)
