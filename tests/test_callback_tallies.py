"""The report's hourly counts (calls/callback_tallies.py) against the rows they count.

The counts are an optimisation with an invariant: they change in the same transaction as the
callback rows. These tests attack it: random days of misses, call backs and clients calling
again with Megaplan failing, answers lost, deadlines passing and a writer that dies between
counting and committing; afterwards every figure of every period is computed again from the
rows themselves (the oracle below, plain SQL) and must be the same.
"""
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from host_stub.db import db
from megaplan_plugin.calls import callback_figures, callback_tallies
from megaplan_plugin.delivery import outcomes
from megaplan_plugin.models import Callback, CallbackRung, OutboxEntry, aware, utcnow

MSK = ZoneInfo("Europe/Moscow")
SETTINGS = dict(create_communication="y", communication_types=["missed"], callback_within="30",
                work_start="09:00", work_end="18:00", work_days=[str(d) for d in range(7)],
                time_zone="Europe/Moscow")
USERS = ["ivanov", "petrova", "sidorov"]


def oracle(session, since, until, now) -> dict:
    """Every figure, counted from the rows."""
    found = session.execute(db.select(Callback).where(
        Callback.account_id == "demo", Callback.opened_at >= since, Callback.opened_at < until)).scalars().all()
    called_back = sorted(c.wait_seconds for c in found if c.outcome in (Callback.IN_TIME, Callback.LATE))
    rung = {}
    ids = {c.id for c in found}
    for callback_id, employee_id in set(session.execute(db.select(CallbackRung.callback_id, CallbackRung.employee_id))):
        if callback_id in ids:
            rung[employee_id] = rung.get(employee_id, 0) + 1
    back, back_in_time = {}, {}
    for c in found:
        if c.outcome in (Callback.IN_TIME, Callback.LATE) and c.closed_by_id:
            back[c.closed_by_id] = back.get(c.closed_by_id, 0) + 1
            if c.outcome == Callback.IN_TIME:
                back_in_time[c.closed_by_id] = back_in_time.get(c.closed_by_id, 0) + 1
    return {
        "missed": session.execute(db.select(db.func.count()).where(
            OutboxEntry.account_id == "demo", OutboxEntry.callback_id.is_not(None),
            OutboxEntry.started_at >= since, OutboxEntry.started_at < until)).scalar(),
        "callbacks": len(found),
        "in_time": sum(c.outcome == Callback.IN_TIME for c in found),
        "late": sum(c.outcome == Callback.LATE for c in found),
        "client": sum(c.outcome == Callback.CLIENT for c in found),
        "open": sum(c.outcome is None for c in found),
        "overdue": sum(c.outcome is None and (c.escalated_at is not None or aware(c.due_at) <= now) for c in found),
        "median": callback_tallies.wait_bucket(called_back[(len(called_back) - 1) // 2]) if called_back else None,
        "employees": {e: (rung.get(e, 0), back.get(e, 0), back_in_time.get(e, 0))
                      for e in set(rung) | set(back)},
    }


def from_tallies(session, since, until, now) -> dict:
    f = callback_figures.figures(session, "demo", None, since, until, now)
    return {"missed": f.missed, "callbacks": f.callbacks, "in_time": f.in_time, "late": f.late, "client": f.client,
            "open": f.open, "overdue": f.overdue, "median": f.median_seconds,
            "employees": {p.employee_id: (p.rung, p.called_back, p.in_time) for p in f.employees}}


def assert_agree(app, days: list) -> None:
    now = utcnow()
    with app.app_context():
        periods = [callback_figures.bounds(n, "Europe/Moscow") for n in (1, 7, 30)]
        periods += [(datetime.combine(d, datetime.min.time(), MSK).astimezone(timezone.utc),
                     datetime.combine(d + timedelta(days=1), datetime.min.time(), MSK).astimezone(timezone.utc))
                    for d in days]
        for since, until in periods:
            expected = oracle(db.session, since, until, now)
            assert from_tallies(db.session, since, until, now) == expected, (since, until)
        db.session.remove()


def script(pbx, rng: random.Random, days: list, calls: int) -> None:
    numbers = [f"7916888{n:04d}" for n in range(8)]
    for _ in range(calls):
        day = rng.choice(days)
        start = datetime.combine(day, datetime.min.time(), MSK) + timedelta(minutes=rng.randrange(7 * 60, 20 * 60))
        start = start.astimezone(timezone.utc)
        phone, user = rng.choice(numbers), rng.choice(USERS)
        kind = rng.random()
        if kind < 0.5:
            call = pbx.new_call(phone=phone)
            call.ring(*rng.sample(USERS, rng.randint(1, 2)))
            call.history(status="missed", user="pbx", duration=20, start=start)
        elif kind < 0.8:
            pbx.new_call(phone=phone, direction="out").history(status="Success", user=user, duration=30, start=start)
        else:
            call = pbx.new_call(phone=phone)
            call.ring(user).answer(user)
            call.history(status="Success", user=user, duration=30, start=start)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_counts_agree_with_the_rows_after_days_of_faults(app, pbx, rq_worker, megaplan_sandbox, integration,
                                                              seed):
    integration(**SETTINGS)
    rng = random.Random(seed)
    today = datetime.now(MSK).date()
    days = [today - timedelta(days=d) for d in (0, 1, 2, 8)]  # today, the week, the month
    state = megaplan_sandbox.state
    for round_ in range(3):
        script(pbx, rng, days, 12)
        state.fail_next(rng.randint(1, 3), 500, path_prefix="/api/v3/todo/")
        state.lose_answers_next(1, path_prefix="/api/v3/todo/", method="POST")
        rq_worker()
        assert_agree(app, days)
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(Callback)).scalar() > 3
        assert set(db.session.execute(db.select(OutboxEntry.state)).scalars()) == {"sent"}
        db.session.remove()


def test_a_writer_that_dies_between_counting_and_committing_counts_nothing_twice(
        app, pbx, rq_worker, megaplan_sandbox, integration, monkeypatch):
    integration(**SETTINGS)
    today = datetime.now(MSK).date()
    real = outcomes.record
    deaths = []

    def dies_once(row, state, **kw):
        if state == OutboxEntry.SENT and row.callback_id is not None and not deaths:
            deaths.append(row.call_id)
            raise RuntimeError("the worker dies here (counted, not committed)")
        return real(row, state, **kw)
    monkeypatch.setattr(outcomes, "record", dies_once)
    script(pbx, random.Random(3), [today], 20)
    rq_worker()
    rq_worker()  # the sweep wakes the account's writer again
    assert deaths
    with app.app_context():
        assert set(db.session.execute(db.select(OutboxEntry.state)).scalars()) == {"sent"}
        db.session.remove()
    assert_agree(app, [today])
