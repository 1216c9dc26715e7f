"""The outbox is called the outbox: table ``megaplan_call`` becomes ``megaplan_outbox``.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY_COLUMNS = ["account_id", "call_id", "kind"]
INDEXES = {"state": ["state", "updated_at"], "account_started": ["account_id", "started_at"]}


def upgrade():
    _rename("megaplan_call", "megaplan_outbox")


def downgrade():
    _rename("megaplan_outbox", "megaplan_call")


def _rename(old: str, new: str) -> None:
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":
        # Same objects, new names: nothing is rebuilt, no row is copied.
        op.execute(f"ALTER SEQUENCE {old}_id_seq RENAME TO {new}_id_seq")
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {old}_pkey TO {new}_pkey")
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT uq_{old}_key TO uq_{new}_key")
        for name in INDEXES:
            op.execute(f"ALTER INDEX ix_{old}_{name} RENAME TO ix_{new}_{name}")
        return
    # SQLite names a unique constraint inside the table's DDL and cannot rename an index:
    # batch mode rebuilds the table with the new names.
    for name in INDEXES:
        op.drop_index(f"ix_{old}_{name}", table_name=new)
    with op.batch_alter_table(new, recreate="always") as batch:
        batch.drop_constraint(f"uq_{old}_key", type_="unique")
        batch.create_unique_constraint(f"uq_{new}_key", KEY_COLUMNS)
    for name, columns in INDEXES.items():
        op.create_index(f"ix_{new}_{name}", new, columns)
