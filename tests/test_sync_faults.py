"""Nothing lost, nothing twice: the sync under Megaplan failures, duplicates and concurrency."""
import threading

import pytest

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.outbox import sweep
from megaplan_plugin.delivery.worker import thread_worker
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")


def rows(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry).order_by(OutboxEntry.id)).scalars().all()


def test_megaplan_failing_the_first_writes_is_retried_to_exactly_one_call(
        pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.fail_next(3, status=500, path_prefix="/api/v3/callInfo")
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 1
    (row,) = rows(app)
    assert row.state == "sent" and row.attempts >= 2


def test_a_megaplan_outage_window_loses_nothing_and_duplicates_nothing(
        pbx, rq_worker, megaplan_sandbox, app, integration):
    integration(create_client_on_incoming="y", create_communication="y", communication_types=["missed"])
    megaplan_sandbox.state.outage(3600)
    before = megaplan_sandbox.state.request_count()
    for n in range(5):
        pbx.new_call(phone=f"7999000000{n}").history(status="missed", user="pbx", duration=0)
    rq_worker(scheduled=False)           # the first attempt meets the outage: the writer backs off
    assert {r.state for r in rows(app)} == {"pending"}
    assert "503" in rows(app)[0].last_error
    assert megaplan_sandbox.state.request_count() - before == 1  # not one request per waiting call
    megaplan_sandbox.state.outage_until = 0  # Megaplan is back
    rq_worker()                             # the scheduled retries run
    assert {r.state for r in rows(app)} == {"sent"}
    assert len(megaplan_sandbox.state.calls) == 5
    assert len(megaplan_sandbox.state.todos) == 5
    assert len([c for c in megaplan_sandbox.state.contractors.values()
                if c.get("lastName") == "Новый клиент"]) == 5


def test_retries_exhausted_mark_the_call_failed_and_retry_from_the_journal_sends_it(
        pbx, rq_worker, megaplan_sandbox, app, configured):
    megaplan_sandbox.state.outage(3600)
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    rq_worker()  # all 8 retries are made due at once and fail
    (row,) = rows(app)
    assert row.state == "failed" and "503" in row.last_error
    page = configured.get("/plugins/megaplan/journal/?state=failed").text
    assert call.call_id in page and "ошибка" in page and "Повторить" in page

    megaplan_sandbox.state.outage_until = 0
    response = post_form(configured, f"/plugins/megaplan/journal/{row.id}/retry", {},
                         page="/plugins/megaplan/journal/")
    assert response.status_code == 302
    rq_worker()
    assert rows(app)[0].state == "sent" and len(megaplan_sandbox.state.calls) == 1
    assert "отправлен" in configured.get("/plugins/megaplan/journal/").text


def test_megaplans_retry_after_stretches_the_next_attempt_and_the_call_still_arrives_once(
        pbx, rq_worker, megaplan_sandbox, app):
    from datetime import timedelta, timezone

    from megaplan_plugin.models import utcnow

    def aware(moment):  # SQLite and RQ give naive UTC
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    megaplan_sandbox.state.fail_next(1, status=429, path_prefix="/api/v3/callInfo", retry_after=900)
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker(scheduled=False)
    (row,) = rows(app)
    assert row.state == "pending" and "429" in row.last_error
    # The job's own first interval is seconds; Megaplan asked for 15 minutes and gets them.
    assert aware(row.next_retry_at) - utcnow() > timedelta(minutes=14)
    with app.app_context():  # no writer comes back for it sooner (the sweep will, when it is due)
        from rq.registry import ScheduledJobRegistry
        registry = ScheduledJobRegistry(queue=queues.queue(queues.SYNC_QUEUE))
        assert all(aware(registry.get_scheduled_time(job_id)) - utcnow() > timedelta(minutes=14)
                   for job_id in registry.get_job_ids())
        assert queues.queue(queues.SYNC_QUEUE).count == 0
    rq_worker()  # made due
    assert rows(app)[0].state == "sent" and len(megaplan_sandbox.state.calls) == 1


def test_a_permanent_error_stops_at_once_with_megaplans_message(pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.fail_next(1, status=422, path_prefix="/api/v3/callInfo/history")
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    (row,) = rows(app)
    assert row.state == "failed" and row.attempts == 1
    assert "Injected failure" in row.last_error
    assert megaplan_sandbox.state.request_count("POST", "/api/v3/callInfo/history") == 1


def test_expired_megaplan_token_is_refreshed_without_losing_the_call(pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.expire_access_tokens()
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    assert rows(app)[0].state == "sent"
    megaplan_sandbox.state.revoke_tokens()  # refresh token dead too: back to the password
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    assert [r.state for r in rows(app)] == ["sent", "sent"]


def test_two_workers_on_the_same_unknown_number_create_one_client(
        pbx, megaplan_sandbox, app, integration):
    integration(create_client_on_incoming="y")
    megaplan_sandbox.state.set_latency(30)  # widen the race window
    for _ in range(4):
        pbx.new_call(phone="79995550000").history(status="missed", user="pbx", duration=0)
    conn = app.extensions["megaplan"].redis
    errors = []

    def work():
        try:
            thread_worker(app, conn, queues.QUEUES).work(burst=True, logging_level="WARNING")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert {r.state for r in rows(app)} == {"sent"}
    assert len(megaplan_sandbox.state.calls) == 4
    assert len(megaplan_sandbox.state.contractors_with_phone("79995550000")) == 1


def test_redis_flushed_before_the_worker_ran_loses_nothing(pbx, rq_worker, megaplan_sandbox, app):
    for _ in range(3):
        pbx.new_call().history(status="Success", user="ivanov")
    app.extensions["megaplan"].redis.flushdb()  # Redis restarted empty (not flushall: other test workers)
    assert rq_worker(scheduled=False) == 0
    with app.app_context():
        assert sweep(db)["accounts"] == 1  # one writer for the account's three calls
    rq_worker(scheduled=False)
    assert {r.state for r in rows(app)} == {"sent"} and len(megaplan_sandbox.state.calls) == 3


def test_a_sync_job_run_twice_writes_once(pbx, rq_worker, megaplan_sandbox, app, integration):
    integration(create_communication="y", communication_types=["in"])
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    (row,) = rows(app)
    with app.app_context():
        db.session.get(OutboxEntry, row.id).state = OutboxEntry.PENDING  # as if the worker died before recording
        db.session.commit()
        queues.wake_writer(row.account_id)
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 1 and len(megaplan_sandbox.state.todos) == 1


def test_database_down_during_the_hook_hands_the_call_to_redis(pbx, rq_worker, megaplan_sandbox, app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("a dropped table is an outage only to SQLite; PostgreSQL's outage test "
                        "cuts the connection (test_database_outage.py)")
        OutboxEntry.__table__.drop(db.engine)  # the outbox table is gone: every insert fails
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    call.history(status="Success", user="ivanov")  # the PBX repeats the push
    sync_queue = queues.queue(queues.SYNC_QUEUE, app.extensions["megaplan"].redis)
    assert sync_queue.count == 1  # one job carrying the record, the repeat deduplicated
    rq_worker(scheduled=False)  # still down: the job fails and waits for its retry
    with app.app_context():
        OutboxEntry.__table__.create(db.engine)  # the database is back
    rq_worker()
    (row,) = rows(app)
    assert row.call_id == call.call_id and row.state == "sent"
    assert len(megaplan_sandbox.state.calls) == 1


def test_a_stored_call_no_try_can_write_fails_once_and_holds_up_no_other(pbx, rq_worker, megaplan_sandbox, app):
    """A record at the calendar's edge, stored by a host that let it in: «ошибка» at the first
    try, not three hours of retries, and the account's other calls go on."""
    import sqlalchemy as sa
    from datetime import datetime, timezone
    with app.app_context():
        db.session.execute(sa.insert(OutboxEntry).values(
            kind="call", source="push", account_id="demo", call_id="EDGE-1", direction="in",
            client_phone="79161234567", status="answered", state="pending", attempts=0,
            started_at=datetime(2000, 1, 1, tzinfo=timezone.utc),
            record={"account_id": "demo", "call_id": "EDGE-1", "direction": "in",
                    "client_phone": "79161234567", "virtual_number": "74950000001", "status": "answered",
                    "user": None, "users_rung": [], "started_at": "9999-12-31T23:59:59+00:00",
                    "wait_seconds": 0, "duration_seconds": 42, "recording_url": None}))
        db.session.commit()
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker(scheduled=False)
    edge, other = rows(app)
    assert (edge.state, edge.attempts) == ("failed", 1) and "OverflowError" in edge.last_error
    assert other.state == "sent"
