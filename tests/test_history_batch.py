"""Calls that are a history entry and nothing more go to Megaplan many per request, each once."""
from datetime import datetime, timedelta, timezone

import pytest

from host_stub.db import db
from host_stub.testing import redis_up_for
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")
KNOWN = "79161234567"  # «Кузнецов Сергей» in the sandbox and in the local index


@pytest.fixture(autouse=True)
def steady_redis(app):
    redis_up_for(app.extensions["megaplan"].redis, 60)


def rows(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry).order_by(OutboxEntry.id)).scalars().all()


def push_known(pbx, n: int, each=lambda i: {}) -> list[str]:
    """n answered calls of the known client, history only; ``each(i)`` adds push fields."""
    ids = []
    for i in range(n):
        call = pbx.new_call(phone=KNOWN)
        call.history(status="Success", user="ivanov", **each(i))
        ids.append(call.call_id)
    return ids


def history_posts(sandbox) -> int:
    return sandbox.state.request_count("POST", "/api/v3/callInfo/history")


def test_a_backlog_of_known_clients_calls_goes_in_one_request(pbx, rq_worker, megaplan_sandbox, app):
    before = len(megaplan_sandbox.state.requests)
    ids = push_known(pbx, 30, lambda i: {"duration": 30 + i})
    rq_worker()
    assert history_posts(megaplan_sandbox) == 1
    assert len(megaplan_sandbox.state.requests) == before + 1  # no lookup, no search
    calls = {c["providerId"]: c for c in megaplan_sandbox.state.calls.values()}
    assert sorted(calls) == sorted(ids)
    for row in rows(app):
        mp_call = calls[row.call_id]
        assert row.state == "sent" and row.megaplan_call_id == mp_call["id"] and row.attempts == 1
        assert mp_call["state"] == "finished" and mp_call["fromUser"]["contentType"] == "ContractorHuman"
        assert mp_call["toUser"] == {"contentType": "Employee", "id": "1000002"}


def test_calls_that_want_more_than_history_are_left_to_their_own_jobs(
        pbx, rq_worker, megaplan_sandbox, app, integration):
    integration(create_client_on_incoming="y", create_communication="y", communication_types=["missed"])
    plain = [pbx.new_call(phone=KNOWN) for _ in range(5)]
    for call in plain:
        call.history(status="Success", user="ivanov")
    missed = pbx.new_call(phone=KNOWN)
    missed.history(status="Missed", user="ivanov", duration=0)       # wants a callback todo
    stranger = pbx.new_call(phone="79035550101")
    stranger.history(status="Success", user="ivanov")                 # needs a search and a client
    rq_worker()
    calls = list(megaplan_sandbox.state.calls.values())
    assert sorted(c["providerId"] for c in calls) == sorted(
        [c.call_id for c in plain] + [missed.call_id, stranger.call_id])  # each once
    assert {r.state for r in rows(app)} == {"sent"}
    assert history_posts(megaplan_sandbox) == 3  # the five plain ones together, the other two alone
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["name"].startswith("Перезвонить")
    assert len(megaplan_sandbox.state.contractors_with_phone("79035550101")) == 1


def test_an_answered_call_that_closes_a_callback_is_not_taken_along(
        pbx, rq_worker, megaplan_sandbox, app, integration):
    integration(create_communication="y", communication_types=["missed"])
    pbx.new_call(phone=KNOWN).history(status="Missed", user="ivanov", duration=0)
    rq_worker()
    first = pbx.new_call(phone="74950000002")  # an own number: no client, plain history
    first.history(status="Success", user="ivanov")
    reached = pbx.new_call(phone=KNOWN)
    reached.history(status="Success", user="ivanov")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["isFinished"] is True and reached.call_id in todo["comments"][0]
    assert {r.state for r in rows(app)} == {"sent"}


@pytest.mark.parametrize("status, posts", [
    (422, 3),     # refused: the batch, the first call alone, then the nine others together
    (503, None),  # down: the batch waits for its retry, the others for their jobs
])
def test_a_failed_batch_loses_nothing_and_sends_nothing_twice(
        pbx, rq_worker, megaplan_sandbox, app, status, posts):
    ids = push_known(pbx, 10)
    megaplan_sandbox.state.fail_next(1 if status == 422 else 3, status=status,
                                     path_prefix="/api/v3/callInfo/history")
    rq_worker()
    assert sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values()) == sorted(ids)
    assert {r.state for r in rows(app)} == {"sent"}
    if posts is not None:
        assert history_posts(megaplan_sandbox) == posts


def test_calls_from_before_redis_could_vouch_are_looked_up_one_by_one(pbx, rq_worker, megaplan_sandbox, app):
    redis_up_for(app.extensions["megaplan"].redis, 5)  # restarted five minutes ago
    earlier = datetime.now(timezone.utc) - timedelta(minutes=10)
    ids = push_known(pbx, 5, lambda i: {"start": earlier + timedelta(seconds=i)})
    rq_worker()
    assert megaplan_sandbox.state.request_count("GET", "/api/v3/callInfo/provider") == 5
    assert history_posts(megaplan_sandbox) == 5
    assert sorted(c["providerId"] for c in megaplan_sandbox.state.calls.values()) == sorted(ids)
