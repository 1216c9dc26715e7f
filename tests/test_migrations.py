"""The plugin's own migrations: the models and the revisions agree, old databases upgrade."""
import os
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from host_stub.db import db
from megaplan_plugin import migrations
from megaplan_plugin.models import Base, OutboxEntry

HEAD = ScriptDirectory.from_config(migrations.config()).get_current_head()


def _engines(tmp_path):
    yield sa.create_engine(f"sqlite:///{tmp_path / 'plugin.sqlite3'}")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        from host_stub.testing import _pg, _reset_services
        _reset_services({"SQLALCHEMY_DATABASE_URI": _pg(url)})
        yield sa.create_engine(_pg(url))


def _diff(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": migrations.include_object,
                                                     "compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_the_models_and_the_revisions_agree(app, tmp_path):
    with app.app_context():  # a new database: made from the models, stamped at the head
        assert _diff(db.engine) == []
        with db.engine.connect() as conn:
            assert migrations.current(conn) == HEAD
            tables = set(sa.inspect(conn).get_table_names())
    assert "megaplan_alembic_version" in tables and "alembic_version" not in tables  # its own table
    for engine in _engines(tmp_path):  # every revision replayed on an empty database
        migrations.upgrade(engine, create_fresh=False)
        with engine.connect() as conn:
            assert migrations.current(conn) == HEAD
        assert _diff(engine) == []  # autogenerate would find nothing to write
        engine.dispose()


def _seed_0001(conn):
    now = datetime.now(timezone.utc)
    conn.execute(sa.text(
        "INSERT INTO megaplan_credential (id, account_id, title, login, base_url, password_enc, "
        "created_at, updated_at) VALUES (1, 'demo', 'Мегаплан', 'a@b.ru', 'https://x.megaplan.ru', "
        "'enc', :now, :now)"), {"now": now})
    conn.execute(sa.text(
        "INSERT INTO megaplan_settings (account_id, credential_id, active, filter_by_numbers, "
        "virtual_numbers, route_to_manager, create_client_on_incoming, create_contact_on_outgoing, "
        "create_communication, communication_types, save_unknown_employees, api_key, updated_at) "
        "VALUES ('demo', 1, :t, :f, '[]', :f, :f, :f, :f, '[]', :f, 'k1', :now)"),
        {"t": True, "f": False, "now": now})
    conn.execute(sa.text(
        "INSERT INTO megaplan_call (account_id, call_id, direction, client_phone, status, started_at, "
        "record, state, attempts, created_at, updated_at) VALUES ('demo', 'C-1', 'in', '79161234567', "
        "'answered', :now, '{}', 'sent', 1, :now, :now)"), {"now": now})
    conn.execute(sa.text(
        "INSERT INTO megaplan_deferred_event (account_id, call_id, hook, payload, created_at) "
        "VALUES ('demo', 'C-2', 'call_started', '{}', :now)"), {"now": now})


@pytest.mark.parametrize("made_by", ["revision 0001", "create_all of release 0.1"])
def test_a_database_of_the_previous_release_with_rows_upgrades(tmp_path, made_by):
    for engine in _engines(tmp_path):
        migrations.upgrade(engine, "0001")
        with engine.begin() as conn:
            _seed_0001(conn)
            if made_by.startswith("create_all"):
                conn.execute(sa.text(f"DROP TABLE {migrations.VERSION_TABLE}"))  # no history at all
        migrations.upgrade(engine)
        with engine.begin() as conn:
            assert migrations.current(conn) == HEAD
            row = conn.execute(sa.text("SELECT call_id, kind, source, state FROM megaplan_outbox")).one()
            assert tuple(row) == ("C-1", "call", "push", "sent")
            assert conn.execute(sa.text("SELECT api_key, reconciled_at FROM megaplan_settings")).one() == ("k1", None)
            # The new key lets a popup of the same call have its own row.
            conn.execute(sa.insert(OutboxEntry.__table__).values(
                kind="popup", account_id="demo", call_id="C-1", direction="in", client_phone="79161234567",
                status="call_started", started_at=datetime.now(timezone.utc), record={}, state="pending",
                attempts=0, source="push", created_at=datetime.now(timezone.utc),
                updated_at=datetime.now(timezone.utc)))
            assert "megaplan_deferred_event" not in sa.inspect(conn).get_table_names()
        assert _diff(engine) == []
        engine.dispose()


def test_the_db_upgrade_command_reports_the_revision(app):
    result = app.test_cli_runner().invoke(args=["megaplan", "db", "upgrade"])
    assert result.exit_code == 0 and f"revision {HEAD}" in result.output
    assert app.test_cli_runner().invoke(args=["megaplan", "db", "current"]).output.strip() == HEAD


def test_the_outbox_renamed_keeps_its_rows_its_key_and_its_ids_and_goes_back(tmp_path):
    for engine in _engines(tmp_path):
        migrations.upgrade(engine, "0001")
        with engine.begin() as conn:
            _seed_0001(conn)
        migrations.upgrade(engine, "0002")
        migrations.upgrade(engine, "0003")
        now = datetime.now(timezone.utc)
        row = dict(kind="call", account_id="demo", call_id="C-2", direction="in", client_phone="79161234567",
                   status="answered", started_at=now, record={}, state="pending", attempts=0, source="push",
                   created_at=now, updated_at=now)
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT call_id FROM megaplan_outbox")).scalars().all() == ["C-1"]
            # the table as revision 0003 left it (the model has columns of later revisions)
            outbox = sa.Table("megaplan_outbox", sa.MetaData(), autoload_with=conn)
            row["record"] = "{}"
            new_id = conn.execute(sa.insert(outbox).values(**row)).inserted_primary_key[0]
            assert new_id > 1  # the id sequence came along
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(sa.insert(outbox).values(**row))  # the key came along
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("megaplan_outbox")}
            assert {"ix_megaplan_outbox_state", "ix_megaplan_outbox_account_started"} <= names
        with engine.begin() as conn:
            cfg = migrations.config(conn)
            from alembic import command
            command.downgrade(cfg, "0002")
        with engine.begin() as conn:
            assert sorted(conn.execute(sa.text("SELECT call_id FROM megaplan_call")).scalars()) == ["C-1", "C-2"]
        engine.dispose()


def test_open_callback_todos_of_earlier_versions_become_one_callback_per_number(tmp_path):
    """Revision 0009: open «Перезвонить» todos (one per missed call) become one callback per
    number with no deadline; answered calls' communications and closed ones are left alone."""
    for engine in _engines(tmp_path):
        migrations.upgrade(engine, "0008", create_fresh=False)
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            outbox = sa.Table("megaplan_outbox", sa.MetaData(), autoload_with=conn)
            for n, (phone, status, todo, closed) in enumerate([
                    ("79160000001", "missed", "5000001", None), ("79160000001", "missed", "5000002", None),
                    ("79160000001", "answered", "5000003", None),  # a communication, not a callback
                    ("79160000002", "missed", "5000004", "C-back"),  # closed before the upgrade
                    ("79160000003", "busy", "5000005", None)]):
                conn.execute(sa.insert(outbox).values(
                    kind="call", account_id="demo", call_id=f"C-{n}", direction="in", client_phone=phone,
                    status=status, started_at=now,
                    record="{}", state="sent", attempts=1, source="push", created_at=now, updated_at=now,
                    callback_todo_id=todo, callback_closed_by=closed, recording_plays=0, copy_attempts=0))
        migrations.upgrade(engine)
        with engine.connect() as conn:
            made = conn.execute(sa.text("SELECT id, client_phone, misses, todo_id, due_at, outcome "
                                        "FROM megaplan_callback ORDER BY client_phone")).all()
            assert [(m.client_phone, m.misses, m.due_at, m.outcome) for m in made] == [
                ("79160000001", 2, None, None), ("79160000003", 1, None, None)]
            assert made[0].todo_id in ("5000001", "5000002")
            linked = dict(conn.execute(sa.text("SELECT call_id, callback_id FROM megaplan_outbox")).all())
            assert linked == {"C-0": made[0].id, "C-1": made[0].id, "C-2": None, "C-3": None, "C-4": made[1].id}
            # and 0010 counted them for the report
            tallies = dict(conn.execute(sa.text("SELECT figure, sum(n) FROM megaplan_callback_tally "
                                                "GROUP BY figure")).all())
            assert {k: int(v) for k, v in tallies.items()} == {"callbacks": 2, "missed": 3}
            assert _diff(engine) == []
        engine.dispose()
