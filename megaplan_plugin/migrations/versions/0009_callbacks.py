"""Missed calls come back: callbacks with a deadline, who was rung, escalation, and the
account's working hours and «Перезвонить в течение».

Callback todos left open by earlier versions (one per missed call) become one callback per
number without a deadline: they are closed as before when the number is reached, and never
escalated (nobody set them a deadline).

Revision ID: 0009
Revises: 0008
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("megaplan_settings") as batch:
        batch.add_column(sa.Column("callback_within", sa.String(16), nullable=False, server_default="30"))
        batch.add_column(sa.Column("work_days", sa.JSON))
        batch.add_column(sa.Column("work_start", sa.String(5), nullable=False, server_default="09:00"))
        batch.add_column(sa.Column("work_end", sa.String(5), nullable=False, server_default="18:00"))
        batch.add_column(sa.Column("escalate_to", sa.String(16), nullable=False, server_default="default"))
        batch.add_column(sa.Column("supervisor_id", sa.String(32)))
    op.execute("UPDATE megaplan_settings SET work_days = '[0, 1, 2, 3, 4]'")
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.add_column(sa.Column("callback_id", sa.Integer))
    op.create_table(
        "megaplan_callback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("client_phone", sa.String(32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_missed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("misses", sa.Integer, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("todo_id", sa.String(32)),
        sa.Column("outcome", sa.String(8)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("closed_call_id", sa.String(128)),
        sa.Column("closed_by_id", sa.String(32)),
        sa.Column("closed_by_name", sa.String(200)),
        sa.Column("wait_seconds", sa.Integer),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("escalated_to", sa.String(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_megaplan_callback_open", "megaplan_callback", ["account_id", "client_phone"], unique=True,
                    sqlite_where=sa.text("outcome IS NULL"), postgresql_where=sa.text("outcome IS NULL"))
    op.create_index("ix_megaplan_callback_report", "megaplan_callback", ["account_id", "opened_at"])
    op.create_index("ix_megaplan_callback_due", "megaplan_callback", ["outcome", "escalated_at", "due_at"])
    op.create_table(
        "megaplan_callback_rung",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("callback_id", sa.Integer, sa.ForeignKey("megaplan_callback.id", ondelete="CASCADE"), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("employee_id", sa.String(32), nullable=False),
        sa.Column("missed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("callback_id", "call_id", "employee_id", name="uq_megaplan_callback_rung"),
    )
    op.create_index("ix_megaplan_callback_rung_report", "megaplan_callback_rung", ["account_id", "missed_at"])
    _adopt_open_todos()


def _adopt_open_todos():
    """One callback per number for the open todos of earlier versions (no deadline)."""
    conn = op.get_bind()
    now = datetime.now(timezone.utc)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None).isoformat(" ")  # as SQLAlchemy stores times there
    groups = conn.execute(sa.text(
        "SELECT account_id, client_phone, min(started_at) AS first, max(started_at) AS last, count(*) AS n "
        "FROM megaplan_outbox WHERE kind = 'call' AND direction = 'in' AND status <> 'answered' "
        "AND callback_todo_id IS NOT NULL AND callback_closed_by IS NULL GROUP BY account_id, client_phone")).all()
    for group in groups:
        latest = conn.execute(sa.text(
            "SELECT callback_todo_id FROM megaplan_outbox WHERE kind = 'call' AND account_id = :a "
            "AND client_phone = :p AND direction = 'in' AND status <> 'answered' AND callback_todo_id IS NOT NULL AND callback_closed_by IS NULL "
            "ORDER BY started_at DESC LIMIT 1"), {"a": group.account_id, "p": group.client_phone}).scalar()
        # the aggregates as the database gave them (SQLite answers them as the stored text)
        made = conn.execute(sa.text(
            "INSERT INTO megaplan_callback (account_id, client_phone, opened_at, last_missed_at, misses, todo_id, "
            "created_at) VALUES (:a, :p, :first, :last, :n, :todo, :now) RETURNING id"),
            {"a": group.account_id, "p": group.client_phone, "first": group.first, "last": group.last,
             "n": group.n, "todo": latest, "now": now}).scalar()
        conn.execute(sa.text(
            "UPDATE megaplan_outbox SET callback_id = :c WHERE kind = 'call' AND account_id = :a "
            "AND client_phone = :p AND direction = 'in' AND status <> 'answered' AND callback_todo_id IS NOT NULL AND callback_closed_by IS NULL"),
            {"c": made, "a": group.account_id, "p": group.client_phone})


def downgrade():
    op.drop_index("ix_megaplan_callback_rung_report", table_name="megaplan_callback_rung")
    op.drop_table("megaplan_callback_rung")
    for index in ("ix_megaplan_callback_due", "ix_megaplan_callback_report", "uq_megaplan_callback_open"):
        op.drop_index(index, table_name="megaplan_callback")
    op.drop_table("megaplan_callback")
    with op.batch_alter_table("megaplan_outbox") as batch:
        batch.drop_column("callback_id")
    with op.batch_alter_table("megaplan_settings") as batch:
        for column in ("supervisor_id", "escalate_to", "work_end", "work_start", "work_days", "callback_within"):
            batch.drop_column(column)
