"""A call's CallInfo is remembered in Redis; Megaplan is asked for it only when Redis cannot
vouch that a missing memory means "none" (it lost data, restarted, or the call is too old)."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from host_stub.testing import redis_up_for
from megaplan_plugin.delivery import known_calls

pytestmark = pytest.mark.usefixtures("integration")


def _lookups(sandbox) -> int:
    return sandbox.state.request_count("GET", "/api/v3/callInfo/provider")


def test_with_redis_up_a_popup_call_is_three_requests_and_a_known_clients_call_one(
        app, pbx, rq_worker, megaplan_sandbox):
    redis_up_for(app.extensions["megaplan"].redis, 10)
    before = len(megaplan_sandbox.state.requests)
    call = pbx.new_call(phone="79161234567")  # a client the local index knows
    call.ring("ivanov")
    rq_worker()
    call.answer("ivanov")
    rq_worker()
    call.history(status="Success", user="ivanov")
    rq_worker()
    made = [(m, p) for m, p, _ in list(megaplan_sandbox.state.requests)[before:]]
    assert [m for m, _ in made] == ["POST", "POST", "POST"], made  # create, talking, finished
    assert [e["state"] for e in megaplan_sandbox.state.widget_events] == ["calling", "talking", "finished"]

    before = len(megaplan_sandbox.state.requests)
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")
    rq_worker()
    made = [(m, p) for m, p, _ in list(megaplan_sandbox.state.requests)[before:]]
    assert made == [("POST", "/api/v3/callInfo/history")]
    assert _lookups(megaplan_sandbox) == 0
    assert {c["state"] for c in megaplan_sandbox.state.calls.values()} == {"finished"}


def test_after_redis_lost_its_data_megaplan_is_asked_and_the_popup_is_finished_not_doubled(
        app, pbx, rq_worker, megaplan_sandbox):
    redis_up_for(app.extensions["megaplan"].redis, 10)
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov")
    rq_worker()
    app.extensions["megaplan"].redis.flushdb()  # Redis restarted empty: the memory is gone
    call.history(status="Success", user="ivanov")
    rq_worker()
    assert _lookups(megaplan_sandbox) == 1
    (mp_call,) = megaplan_sandbox.state.calls.values()
    assert mp_call["state"] == "finished"
    assert [e["state"] for e in megaplan_sandbox.state.widget_events] == ["calling", "finished"]


def test_a_restart_that_reloaded_a_snapshot_is_not_trusted(app, pbx, rq_worker, megaplan_sandbox):
    redis_up_for(app.extensions["megaplan"].redis, 10)
    conn = app.extensions["megaplan"].redis
    mark = json.loads(conn.get(known_calls.SINCE_KEY))
    conn.set(known_calls.SINCE_KEY, json.dumps({**mark, "server": "the run before the restart"}))
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")
    rq_worker()
    assert _lookups(megaplan_sandbox) == 1
    assert json.loads(conn.get(known_calls.SINCE_KEY))["server"] == mark["server"]  # now from now on


def test_a_call_older_than_the_memory_lasts_is_looked_up(app, pbx, rq_worker, megaplan_sandbox):
    redis_up_for(app.extensions["megaplan"].redis, 24 * 60)
    started = datetime.now(timezone.utc) - timedelta(seconds=known_calls.KEY_SECONDS + 60)
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov", start=started)
    rq_worker()
    assert _lookups(megaplan_sandbox) == 1
    assert len(megaplan_sandbox.state.calls) == 1


def test_a_fresh_redis_vouches_only_for_calls_that_start_after_it(app, pbx, rq_worker, megaplan_sandbox):
    app.extensions["megaplan"].redis.delete(known_calls.SINCE_KEY)
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")
    rq_worker()
    assert _lookups(megaplan_sandbox) == 1


def test_with_redis_keeps_keys_off_every_call_is_looked_up_and_sent_alone(app, pbx, rq_worker, megaplan_sandbox):
    app.config["MEGAPLAN_REDIS_KEEPS_KEYS"] = False  # a Redis that may evict keys
    redis_up_for(app.extensions["megaplan"].redis, 60)
    for _ in range(3):
        pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")
    rq_worker()
    assert _lookups(megaplan_sandbox) == 3
    assert megaplan_sandbox.state.request_count("POST", "/api/v3/callInfo/history") == 3
