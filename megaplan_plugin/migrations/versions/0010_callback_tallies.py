"""The missed-calls report's hourly counts (calls/callback_tallies.py), filled from the
callbacks, the missed calls and who they rang that exist already; the index of callbacks not
handed on yet holds only those (the report counts them per request).

Self-contained: the hour and the wait buckets are computed here as the module does today, so
that a later change of the module does not change what this revision did.

Revision ID: 0010
Revises: 0009
"""
from collections import Counter
from datetime import timezone

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_STEPS = [(3600, 60), (4 * 3600, 300), (24 * 3600, 900), (7 * 86400, 3600)]
_TIME = sa.DateTime(timezone=True)


def _hour(moment):
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _bucket(seconds):
    for limit, step in _STEPS:
        if seconds < limit:
            return seconds // step * step
    return _STEPS[-1][0]


_DUE = "outcome IS NULL AND escalated_at IS NULL"


def upgrade():
    op.drop_index("ix_megaplan_callback_due", table_name="megaplan_callback")
    op.create_index("ix_megaplan_callback_due", "megaplan_callback", ["due_at", "account_id"],
                    sqlite_where=sa.text(_DUE), postgresql_where=sa.text(_DUE))
    tally = op.create_table(
        "megaplan_callback_tally",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("hour", _TIME, primary_key=True),
        sa.Column("figure", sa.String(16), primary_key=True),
        sa.Column("detail", sa.String(32), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    conn = op.get_bind()
    callback = sa.table("megaplan_callback", sa.column("id", sa.Integer), sa.column("account_id", sa.String),
                        sa.column("opened_at", _TIME), sa.column("outcome", sa.String),
                        sa.column("escalated_at", _TIME), sa.column("wait_seconds", sa.Integer),
                        sa.column("closed_by_id", sa.String))
    outbox = sa.table("megaplan_outbox", sa.column("account_id", sa.String), sa.column("started_at", _TIME),
                      sa.column("callback_id", sa.Integer))
    rung = sa.table("megaplan_callback_rung", sa.column("callback_id", sa.Integer),
                    sa.column("employee_id", sa.String))
    counts = Counter()
    opened = {}
    for row in conn.execute(sa.select(callback)):
        hour = _hour(row.opened_at)
        opened[row.id] = (row.account_id, hour)
        counts[(row.account_id, hour, "callbacks", "")] += 1
        if row.outcome is not None:
            counts[(row.account_id, hour, row.outcome, "")] += 1
        elif row.escalated_at is not None:
            counts[(row.account_id, hour, "escalated", "")] += 1
        if row.outcome in ("in_time", "late") and row.wait_seconds is not None:
            counts[(row.account_id, hour, "wait", str(_bucket(row.wait_seconds)))] += 1
            if row.closed_by_id:
                counts[(row.account_id, hour, "back", row.closed_by_id)] += 1
                if row.outcome == "in_time":
                    counts[(row.account_id, hour, "back_ok", row.closed_by_id)] += 1
    for row in conn.execute(sa.select(outbox).where(outbox.c.callback_id.is_not(None))):
        counts[(row.account_id, _hour(row.started_at), "missed", "")] += 1
    for row in conn.execute(sa.select(rung.c.callback_id, rung.c.employee_id).distinct()):
        if row.callback_id in opened:
            account, hour = opened[row.callback_id]
            counts[(account, hour, "rung", row.employee_id)] += 1
    if counts:
        conn.execute(sa.insert(tally), [dict(account_id=a, hour=h, figure=f, detail=d, n=n)
                                        for (a, h, f, d), n in counts.items()])


def downgrade():
    op.drop_table("megaplan_callback_tally")
    op.drop_index("ix_megaplan_callback_due", table_name="megaplan_callback")
    op.create_index("ix_megaplan_callback_due", "megaplan_callback", ["outcome", "escalated_at", "due_at"])
