"""A durable intent before every create: a create whose answer was lost is never made twice.

Megaplan (the sandbox) performs each create and the answer never reaches the plugin (the
connection is closed, or the answer comes after the client gave up). The next attempt finds
the intent without an id, looks the entity up, and finishes the job with what it finds.
"""
import pytest

from host_stub.db import db
from megaplan_plugin.delivery import intents
from megaplan_plugin.models import Intent, OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")


def rows(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry).order_by(OutboxEntry.id)).scalars().all()


def intent(app, kind, key):
    with app.app_context():
        return db.session.execute(db.select(Intent).filter_by(kind=kind, key=key)).scalar_one()


def test_a_history_whose_answer_was_lost_is_looked_up_not_sent_again(pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.lose_answers_next(1, path_prefix="/api/v3/callInfo/history")
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    rq_worker(scheduled=False)
    (row,) = rows(app)
    assert row.state == "pending"  # the plugin does not know whether Megaplan has it
    kept = intent(app, Intent.CALL, call.call_id)
    assert kept.megaplan_id is None and kept.busy_until is not None  # still possibly in flight
    assert len(megaplan_sandbox.state.calls) == 1  # Megaplan made it all the same
    rq_worker()  # the lease runs out, the writer comes back
    assert rows(app)[0].state == "sent"
    (made,) = megaplan_sandbox.state.calls.values()
    assert made["state"] == "finished" and intent(app, Intent.CALL, call.call_id).megaplan_id == made["id"]
    assert megaplan_sandbox.state.request_count("GET", "/api/v3/callInfo/provider") == 1


def test_a_popup_whose_answer_was_lost_is_finished_by_the_history_once(pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.lose_answers_next(1, path_prefix="/api/v3/callInfo")
    call = pbx.new_call()
    call.ring("ivanov")
    rq_worker(scheduled=False)
    assert len(megaplan_sandbox.state.calls) == 1  # the popup exists, the plugin never heard
    call.answer("ivanov")
    call.history(status="Success", user="ivanov")
    rq_worker()
    (made,) = megaplan_sandbox.state.calls.values()
    assert made["providerId"] == call.call_id and made["state"] == "finished"
    assert rows(app)[0].state == "sent"


@pytest.mark.parametrize("delay", [None, 1.5])
def test_a_new_client_whose_answer_was_lost_is_created_once(pbx, rq_worker, megaplan_sandbox, app,
                                                             integration, delay):
    integration(create_client_on_incoming="y")
    megaplan_sandbox.state.lose_answers_next(1, path_prefix="/api/v3/contractorHuman", delay=delay)
    pbx.new_call(phone="79990001122").history(status="missed", user="pbx", duration=0)
    rq_worker()
    assert len(megaplan_sandbox.state.contractors_with_phone("79990001122")) == 1
    (row,) = rows(app)
    assert row.state == "sent"
    (made,) = megaplan_sandbox.state.calls.values()
    assert made["fromUser"]["id"] == megaplan_sandbox.state.contractors_with_phone("79990001122")[0]["id"]


def test_a_communication_whose_answer_was_lost_is_created_once(pbx, rq_worker, megaplan_sandbox, app, integration):
    integration(create_communication="y", communication_types=["missed"])
    # POST /callInfo/<id>/todos (ids start at 4000001); the history's POST is /callInfo/history
    megaplan_sandbox.state.lose_answers_next(1, path_prefix="/api/v3/callInfo/4", method="POST")
    pbx.new_call(phone="79990003344").history(status="missed", user="pbx", duration=0)
    rq_worker()
    assert len(megaplan_sandbox.state.todos) == 1 and rows(app)[0].state == "sent"
    assert rows(app)[0].callback_todo_id == next(iter(megaplan_sandbox.state.todos))


def test_the_usual_call_asks_nothing_before_it_creates(pbx, rq_worker, megaplan_sandbox, integration):
    integration(create_communication="y", communication_types=["missed"], create_client_on_incoming="y")
    before = megaplan_sandbox.state.request_count()
    pbx.new_call(phone="79990005566").history(status="missed", user="pbx", duration=0)
    rq_worker()
    # search, client, history, todo: no lookup of a CallInfo or of the call's todos
    assert megaplan_sandbox.state.request_count() - before == 4
    assert megaplan_sandbox.state.request_count("GET", "/api/v3/callInfo") == 0


def test_a_lease_is_single_flight_and_a_finished_call_refuses_popups(app):
    with app.app_context():
        engine = db.engine
        first = intents.claim(engine, "demo", Intent.CALL, "C-1")
        assert first.fresh
        with pytest.raises(intents.Busy):
            intents.claim(engine, "demo", Intent.CALL, "C-1", live=True)
        first.record("77")
        again = intents.claim(engine, "demo", Intent.CALL, "C-1", finish=True)
        assert not again.fresh and again.megaplan_id == "77"
        again.release()
        with pytest.raises(intents.Finished):
            intents.claim(engine, "demo", Intent.CALL, "C-1", live=True)
        # another account's call of the same id is its own
        assert intents.claim(engine, "other", Intent.CALL, "C-1").fresh
