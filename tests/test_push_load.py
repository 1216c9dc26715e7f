"""200 pushes at once on the stub's real server: every call recorded, no 500, no pool timeout."""
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests

from host_stub.db import db
from host_stub.types import CallRecord
from megaplan_plugin.models import OutboxEntry


@pytest.fixture
def served(live_server):
    return live_server


def test_200_concurrent_history_pushes_are_all_recorded(app, integration, served):
    start = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    ids = [uuid.uuid4().hex.upper() for _ in range(200)]
    barrier = threading.Barrier(200)

    def push(call_id):
        barrier.wait(30)
        return requests.post(f"{served}/pbx/demo/crm", timeout=60, data={
            "cmd": "history", "type": "in", "status": "Success", "phone": "79161234567",
            "diversion": "74950000001", "user": "ivanov", "callid": call_id, "start": start,
            "duration": "7", "crm_token": "demo-crm-token"}).status_code

    with ThreadPoolExecutor(200) as pool:
        codes = list(pool.map(push, ids))
    assert codes == [200] * 200
    with app.app_context():
        stored = db.session.execute(db.select(OutboxEntry.call_id).filter_by(kind=OutboxEntry.CALL)).scalars().all()
    assert sorted(stored) == sorted(ids)


def test_a_record_the_database_refuses_is_a_journal_error_not_a_silent_drop(app, integration, caplog):
    record = CallRecord(account_id="demo", call_id="Z" * 300, direction="in",
                        client_phone="79161234567", virtual_number="74950000001", status="answered",
                        user=None, started_at=datetime.now(timezone.utc), duration_seconds=3)
    with app.test_request_context():
        app.extensions["cabinet"].call_hook("demo", "call_ended", record=record)
    with app.app_context():
        (row,) = db.session.execute(db.select(OutboxEntry).filter_by(kind=OutboxEntry.CALL)).scalars().all()
        dialect = db.engine.dialect.name
    assert row.call_id.startswith("ZZZ")
    if dialect == "postgresql":  # SQLite stores any length: nothing refused there
        assert row.state == "failed" and "не удалось сохранить" in row.last_error
        assert "refused by the database" in caplog.text
    page = integration().get("/plugins/megaplan/journal/").text
    assert row.call_id in page
