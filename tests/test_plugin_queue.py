"""The plugin's hooks record and enqueue; a Redis outage loses nothing."""
from rq import Queue

from host_stub.db import db
from megaplan_plugin.delivery import queues
from megaplan_plugin.delivery.outbox import sweep
from megaplan_plugin.models import OutboxEntry


def _counts(app):
    conn = app.extensions["megaplan"].redis
    return {name: Queue(name, connection=conn).count for name in queues.QUEUES}


def _rows(app, model, kind=OutboxEntry.CALL):
    with app.app_context():
        return db.session.execute(db.select(model).filter_by(kind=kind)).scalars().all()


def test_a_call_reaches_the_plugins_queues(app, pbx, integration, rq_worker):
    call = pbx.new_call()
    call.ring("ivanov", "petrova").answer("ivanov")
    assert _counts(app) == {"megaplan-live": 3, "megaplan": 0}
    call.history(status="Success", user="ivanov")
    assert _counts(app) == {"megaplan-live": 3, "megaplan": 1}
    (row,) = _rows(app, OutboxEntry)
    assert (row.call_id, row.status, row.state) == (call.call_id, "answered", "pending")
    assert row.record["user"]["login"] == "ivanov"

    assert rq_worker() == 4
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 0}
    (row,) = _rows(app, OutboxEntry)
    assert row.state == "sent" and row.megaplan_call_id


def test_a_repeated_push_is_one_row_and_one_job(app, pbx, integration):
    call = pbx.new_call()
    for _ in range(3):
        call.ring("ivanov")
        call.history(status="missed", user="pbx", duration=0)
    assert len(_rows(app, OutboxEntry)) == 1
    assert _counts(app) == {"megaplan-live": 1, "megaplan": 1}


def test_plugin_disabled_means_nothing_recorded_or_queued(app, pbx):
    call = pbx.new_call()
    call.ring("ivanov")
    call.history()
    assert _rows(app, OutboxEntry) == []
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 0}


def test_integration_inactive_means_nothing_queued_and_the_journal_says_why(app, pbx, integration):
    integration(active=None)
    call = pbx.new_call()
    call.ring("ivanov")
    call.history()
    (row,) = _rows(app, OutboxEntry)
    assert (row.state, row.reason) == ("skipped", "интеграция не активна")
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 0}


def test_redis_down_during_hooks_loses_nothing_once_it_is_back(app, pbx, integration, rq_worker):
    state = app.extensions["megaplan"]
    real = state.redis
    state.redis = queues.connect("redis://127.0.0.1:1/0")  # nobody listens there
    call = pbx.new_call()
    call.ring("ivanov")                       # the PBX still gets its 200
    call.history(status="Success", user="ivanov")
    (row,) = _rows(app, OutboxEntry)
    assert row.state == "pending"
    (deferred,) = _rows(app, OutboxEntry, kind=OutboxEntry.POPUP)  # the one outbox keeps the popup too
    assert deferred.record["hook"] == "call_started" and deferred.call_id == call.call_id
    assert deferred.state == "pending"

    state.redis = real
    with app.app_context():
        counts = sweep(db)
    assert counts == {"accounts": 1, "popups": 1, "stale_popups": 0, "abandoned": 0, "copies": 0}
    assert _rows(app, OutboxEntry, kind=OutboxEntry.POPUP)[0].state == "sent"
    assert _counts(app) == {"megaplan-live": 1, "megaplan": 1}
    rq_worker()
    (row,) = _rows(app, OutboxEntry)
    assert row.state == "sent"
    with app.app_context():
        assert sweep(db) == {"accounts": 0, "popups": 0, "stale_popups": 0, "abandoned": 0, "copies": 0}


def test_sweeper_requeues_a_call_whose_job_vanished_from_redis(app, pbx, integration, rq_worker):
    pbx.new_call().history()
    conn = app.extensions["megaplan"].redis
    conn.flushdb()  # Redis restarted without persistence: the writer's job and its flag gone
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 0}
    with app.app_context():
        assert sweep(db)["accounts"] == 1
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 1}
    rq_worker(scheduled=False)
    assert _rows(app, OutboxEntry)[0].state == "sent"


def test_resend_command_reports_what_it_queued(app, pbx, integration):
    state = app.extensions["megaplan"]
    real, state.redis = state.redis, queues.connect("redis://127.0.0.1:1/0")
    pbx.new_call().history()
    state.redis = real
    result = app.test_cli_runner().invoke(args=["megaplan", "resend"])
    assert result.exit_code == 0, result.output
    assert '"accounts": 1' in result.output


def test_a_sweeps_cost_grows_with_the_accounts_that_have_work_not_with_their_calls(app, pbx, integration):
    """Megaplan down all day: thousands of calls wait. The sweep asks the database one index
    step per account with work and writes nothing; a writer already queued is not queued twice."""
    import sqlalchemy as sa

    def statements_of_a_sweep():
        seen = []
        listener = lambda _c, _cur, statement, *_: seen.append(statement.lstrip().split()[0].upper())
        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", listener)
            try:
                assert sweep(db)["accounts"] == 1
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", listener)
        return seen

    pbx.new_call().history()
    few = statements_of_a_sweep()
    for _ in range(30):
        pbx.new_call().history()
    many = statements_of_a_sweep()
    assert few == many and "UPDATE" not in many and "INSERT" not in many
    assert _counts(app) == {"megaplan-live": 0, "megaplan": 1}  # one writer for 31 calls


def test_a_popup_of_a_call_id_with_a_lone_surrogate_is_queued(app, integration):
    """A host whose door lets "\ud800" through (valid JSON, not valid UTF-8; the stub's door
    refuses it): the popup's job id is made of it all the same, instead of a logged traceback
    and a lost popup."""
    from datetime import datetime, timezone

    from host_stub.types import CallEvent, PbxUser
    event = CallEvent("demo", "X\ud800", "in", "79161234567", "74950000001",
                      PbxUser("ivanov", "Иван Иванов", "101"), at=datetime.now(timezone.utc))
    with app.app_context():
        app.extensions["cabinet"].call_hook("demo", "call_started", event=event)
    assert _counts(app)["megaplan-live"] == 1


def test_lone_surrogates_from_a_host_that_lets_them_through_never_reach_megaplan(app, integration, rq_worker,
                                                                                  megaplan_sandbox):
    """Another host's door passes "\ud800" in a name, a group and a call id: the plugin keeps
    the call, and what Megaplan gets is valid text (U+FFFD in their place)."""
    import json
    from datetime import datetime, timezone

    from host_stub.types import CallEvent, CallRecord, PbxUser
    user = PbxUser("ivanov", "Иван \udc80Иванов", "101")
    now = datetime.now(timezone.utc)
    host = app.extensions["cabinet"]
    with app.app_context():
        host.call_hook("demo", "call_started", event=CallEvent(
            "demo", "S\ud800", "in", "79161234567", "74950000001", user, at=now))
        host.call_hook("demo", "call_ended", record=CallRecord(
            account_id="demo", call_id="S\ud800", direction="in", client_phone="79161234567",
            virtual_number="74950000001", status="answered", user=user, started_at=now,
            duration_seconds=30, wait_seconds=5, users_rung=(user,), group_name="Продажи \ud800"))
    rq_worker()
    state = megaplan_sandbox.state
    assert state.widget_events  # the popup went out too
    sent = json.dumps([state.calls, state.widget_events], ensure_ascii=False, default=str)
    sent.encode("utf-8")  # raises on a lone surrogate
    assert [c["providerId"] for c in megaplan_sandbox.state.calls.values()] == ["S\ufffd"]
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry).filter_by(kind=OutboxEntry.CALL)).scalar_one()
        assert row.state == "sent" and row.record["group_name"] == "Продажи \ufffd"
