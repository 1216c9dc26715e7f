"""Missed calls come back (issue 26): a deadline in working hours, one callback per number,
closed by whatever reaches the client, escalated once, and never twice of anything.

Times are fixed days of November 2026 in Moscow (working hours 10:00-18:00, Monday to Friday,
«Перезвонить в течение» 30 minutes): the PBX pushes each call with its own start, so the
deadlines are those of the scripted days whatever the date of the run.
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from host_stub.db import db
from megaplan_plugin.calls import callbacks, deadlines
from megaplan_plugin.models import Callback, OutboxEntry, aware

MSK = ZoneInfo("Europe/Moscow")
PHONE = "79163334455"
IVANOV, PETROVA, ADMIN = "1000002", "1000003", "1000001"
DEFAULT_RESPONSIBLE = PETROVA  # the tests' settings (host_stub.testing.BASE_SETTINGS)
HOURS = dict(create_communication="y", communication_types=["missed"], callback_within="30",
             work_start="10:00", work_end="18:00", time_zone="Europe/Moscow")


def at(day: int, hour: int, minute: int) -> datetime:
    """A moment of November 2026 in Moscow (25th: Wednesday, 27th: Friday, 30th: Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


# -- the deadline ----------------------------------------------------------------------------------
WEEKDAYS = deadlines.WorkingHours.of(MSK, [0, 1, 2, 3, 4], "10:00", "18:00")


@pytest.mark.parametrize("missed, within, due", [
    (at(25, 17, 55), "30", at(26, 10, 25)),     # 5 min today, 25 tomorrow
    (at(27, 17, 55), "30", at(30, 10, 25)),     # Friday evening: Monday
    (at(25, 3, 0), "60", at(25, 11, 0)),        # at night: from the start of the day
    (at(28, 12, 0), "15", at(30, 10, 15)),      # Saturday: Monday
    (at(25, 12, 0), "240", at(25, 16, 0)),
    (at(25, 16, 30), "240", at(26, 12, 30)),    # 1.5 h today, 2.5 h tomorrow
    (at(25, 12, 0), "workday", at(25, 18, 0)),
    (at(25, 19, 0), "workday", at(26, 18, 0)),  # after hours: the end of the next working day
    (at(25, 19, 0), "1440", at(27, 10, 0)),     # a calendar day from the next morning
    (at(25, 10, 0), "30", at(25, 10, 30)),
])
def test_the_deadline_runs_in_working_hours(missed, within, due):
    assert deadlines.due_at(missed.astimezone(timezone.utc), within, WEEKDAYS) == due.astimezone(timezone.utc)


def test_without_working_days_the_deadline_runs_around_the_clock():
    none = deadlines.WorkingHours.of(MSK, [], "10:00", "18:00")
    assert deadlines.due_at(at(28, 23, 50), "30", none) == at(29, 0, 20).astimezone(timezone.utc)


# -- the flow --------------------------------------------------------------------------------------
@pytest.fixture
def hours(integration):
    integration(**HOURS)
    return integration


def miss(pbx, when: datetime, *rung: str, phone: str = PHONE):
    call = pbx.new_call(phone=phone)
    call.ring(*(rung or ("petrova",)))
    call.history(status="missed", user="pbx", duration=20, wait="20", start=when.astimezone(timezone.utc))
    return call


def call_back(pbx, when: datetime, user: str = "ivanov", phone: str = PHONE):
    call = pbx.new_call(phone=phone, direction="out")
    call.history(status="Success", user=user, duration=60, start=when.astimezone(timezone.utc))
    return call


def client_calls(pbx, when: datetime, user: str = "ivanov", phone: str = PHONE):
    call = pbx.new_call(phone=phone)
    call.ring(user).answer(user)
    call.history(status="Success", user=user, duration=60, start=when.astimezone(timezone.utc))
    return call


def callbacks_of(app, phone: str = PHONE) -> list[Callback]:
    with app.app_context():
        found = db.session.execute(db.select(Callback).filter_by(client_phone=phone).order_by(Callback.id)).scalars().all()
        for callback in found:
            db.session.expunge(callback)
        return found


def comments(todo: dict, text: str) -> list[str]:
    return [c["content"] for c in todo.get("comments", []) if text in c["content"]]


def test_called_back_in_time(app, client, pbx, rq_worker, megaplan_sandbox, hours):
    state = megaplan_sandbox.state
    miss(pbx, at(25, 17, 55))
    back = call_back(pbx, at(26, 10, 10))
    rq_worker()
    (todo,) = state.todos.values()
    assert todo["description"] == "Перезвонить до 26.11.2026 10:25."  # the deadline, in the todo
    assert todo["timeFinished"]
    result = todo["resultComment"]["content"]
    assert result.startswith("Перезвонили Иван Иванов 26.11.2026 10:10, через 16 ч 15 мин после пропущенного "
                             "звонка, в срок (пропущенных звонков: 1).") and back.call_id in result
    (callback,) = callbacks_of(app)
    assert callback.outcome == Callback.IN_TIME and callback.closed_by_id == IVANOV
    assert callback.wait_seconds == (16 * 60 + 15) * 60 and callback.escalated_at is None
    assert aware(callback.due_at) == at(26, 10, 25)
    journal = client.get("/plugins/megaplan/journal/").text
    assert "перезвон: перезвонили в срок" in journal


def test_never_called_back_is_escalated_once_then_called_back_late(app, client, pbx, rq_worker,
                                                                   megaplan_sandbox, hours):
    state = megaplan_sandbox.state
    miss(pbx, at(25, 17, 55), "ivanov")
    rq_worker()  # the deadline (26.11 10:25) is long past: the writer hands it on
    (todo,) = state.todos.values()
    (escalation,) = comments(todo, "Просрочено")
    assert "не перезвонили до 26.11.2026 10:25" in escalation and "пропущенных звонков: 1" in escalation
    assert DEFAULT_RESPONSIBLE in [p["subject"]["id"] for p in todo["participants"]]
    assert not todo.get("timeFinished")
    (callback,) = callbacks_of(app)
    assert callback.escalated_to == DEFAULT_RESPONSIBLE and callback.outcome is None
    assert "перезвон: просрочен" in client.get("/plugins/megaplan/journal/").text
    rq_worker()  # and again: the sweep and the writer come back, nothing is handed on twice
    assert len(comments(state.todos[todo["id"]], "Просрочено")) == 1

    call_back(pbx, at(26, 10, 40), user="petrova")
    rq_worker()
    todo = state.todos[todo["id"]]
    assert "с опозданием" in todo["resultComment"]["content"] and "Мария Петрова" in todo["resultComment"]["content"]
    (callback,) = callbacks_of(app)
    assert callback.outcome == Callback.LATE and callback.closed_by_id == PETROVA
    assert len(comments(todo, "Просрочено")) == 1


def test_escalation_goes_to_the_chosen_supervisor(app, pbx, rq_worker, megaplan_sandbox, hours):
    hours(**HOURS, escalate_to="supervisor", supervisor_id=ADMIN)
    miss(pbx, at(25, 17, 55), "ivanov")
    rq_worker()
    (todo,) = megaplan_sandbox.state.todos.values()
    assert todo["responsible"]["id"] == IVANOV
    assert [p["subject"]["id"] for p in todo["participants"]] == [ADMIN]
    assert callbacks_of(app)[0].escalated_to == ADMIN


def test_a_callback_is_due_at_its_deadline_not_before(app, pbx, rq_worker, megaplan_sandbox, hours):
    """The clock under control: the writer and the sweep ask with the time they have."""
    miss(pbx, at(25, 17, 55))
    rq_worker()
    with app.app_context():
        made = db.session.execute(db.select(Callback)).scalar_one()
        assert made.escalated_at is not None
        made.escalated_at = None  # as it was before the writer came by
        db.session.commit()
        due = at(26, 10, 25).astimezone(timezone.utc)
        assert callbacks.overdue(db.session, "demo", due - timedelta(seconds=1)) == []
        assert callbacks.accounts_overdue(db.session, due - timedelta(seconds=1)) == []
        assert [c.id for c in callbacks.overdue(db.session, "demo", due)] == [made.id]
        assert callbacks.accounts_overdue(db.session, due) == ["demo"]


def test_three_misses_then_one_call_back_are_one_todo_closed_once(app, pbx, rq_worker, megaplan_sandbox, hours):
    state = megaplan_sandbox.state
    miss(pbx, at(26, 10, 0), "petrova")
    miss(pbx, at(26, 10, 5), "ivanov")
    miss(pbx, at(26, 10, 20), "petrova")
    rq_worker()
    (todo,) = state.todos.values()  # one todo for the number, not three
    further = comments(todo, "Ещё один пропущенный звонок")
    assert [c.split(" (")[1].split(")")[0] for c in further] == ["пропущенных звонков: 2", "пропущенных звонков: 3"]
    assert todo["responsible"]["id"] == PETROVA
    assert [p["subject"]["id"] for p in todo.get("participants", [])] == [IVANOV]  # rung by the second miss
    call_back(pbx, at(26, 10, 30), user="sidorov")
    rq_worker()
    todo = state.todos[todo["id"]]
    assert "пропущенных звонков: 3" in todo["resultComment"]["content"]
    assert state.request_count("POST", f"/api/v3/todo/{todo['id']}/doAction") == 1  # finished once
    (callback,) = callbacks_of(app)
    assert callback.misses == 3 and callback.outcome == Callback.IN_TIME  # due 10:30: the first miss's
    with app.app_context():
        linked = db.session.execute(db.select(OutboxEntry.callback_id).where(
            OutboxEntry.direction == "in")).scalars().all()
    assert linked == [callback.id] * 3


def test_the_client_calling_again_closes_it_and_a_new_miss_opens_a_new_one(app, pbx, rq_worker,
                                                                            megaplan_sandbox, hours):
    state = megaplan_sandbox.state
    miss(pbx, at(26, 11, 0))
    client_calls(pbx, at(26, 11, 5))
    rq_worker()
    (todo,) = state.todos.values()
    assert todo["resultComment"]["content"].startswith("Клиент дозвонился сам 26.11.2026 11:05, ответил Иван Иванов, "
                                                       "через 5 мин после пропущенного звонка")
    miss(pbx, at(26, 12, 0))
    rq_worker()
    first, second = callbacks_of(app)
    assert first.outcome == Callback.CLIENT and second.outcome is None
    assert len(state.todos) == 2 and second.todo_id != first.todo_id


def test_a_call_back_that_began_before_a_miss_does_not_close_it(app, pbx, rq_worker, megaplan_sandbox, hours):
    """Pushes arrive late: the call back of 10:10 is written after the miss of 10:11."""
    miss(pbx, at(26, 10, 11))
    rq_worker()
    call_back(pbx, at(26, 10, 10))
    rq_worker()
    (callback,) = callbacks_of(app)
    assert callback.outcome is None


@pytest.mark.parametrize("lost", ["/comments", "/doAction"])
def test_a_comment_or_finish_whose_answer_was_lost_is_not_made_twice(app, pbx, rq_worker, megaplan_sandbox,
                                                                    hours, lost):
    state = megaplan_sandbox.state
    miss(pbx, at(26, 10, 0))
    rq_worker()
    (todo_id,) = state.todos
    state.lose_answers_next(1, path_prefix=f"/api/v3/todo/{todo_id}{lost}")
    miss(pbx, at(26, 10, 5))
    call_back(pbx, at(26, 10, 20))
    rq_worker()
    todo = state.todos[todo_id]
    assert len(comments(todo, "Ещё один пропущенный звонок")) == 1
    assert len(comments(todo, "Перезвонили")) == 1 and todo["timeFinished"]
    (callback,) = callbacks_of(app)
    assert callback.outcome == Callback.IN_TIME and callback.misses == 2


def test_escalation_whose_comment_answer_was_lost_is_made_once(app, pbx, rq_worker, megaplan_sandbox, hours):
    state = megaplan_sandbox.state
    state.lose_answers_next(1, path_prefix="/api/v3/todo/", method="POST")  # not the todo's create
    miss(pbx, at(25, 17, 55))
    rq_worker()
    (todo,) = state.todos.values()
    assert len(comments(todo, "Просрочено")) == 1
    assert callbacks_of(app)[0].escalated_at is not None


def test_missed_calls_without_todos_are_still_counted_and_closed(app, client, pbx, rq_worker, megaplan_sandbox,
                                                                 integration):
    integration(**{**HOURS, "create_communication": None})
    miss(pbx, at(26, 10, 0))
    miss(pbx, at(26, 10, 1))
    rq_worker()
    assert megaplan_sandbox.state.todos == {}
    (callback,) = callbacks_of(app)
    assert callback.misses == 2 and callback.todo_id is None
    call_back(pbx, at(26, 10, 40))
    rq_worker()
    (callback,) = callbacks_of(app)
    assert callback.outcome == Callback.LATE  # due 10:30


def test_an_inactive_account_hands_nothing_on_and_its_writer_does_not_spin(app, pbx, rq_worker, megaplan_sandbox,
                                                                           hours):
    with app.app_context():  # a callback past its deadline, as deactivating leaves one
        db.session.add(Callback(account_id="demo", client_phone=PHONE, opened_at=at(26, 10, 0), misses=1,
                                last_missed_at=at(26, 10, 0), due_at=at(26, 10, 30)))
        db.session.commit()
    hours(**{**HOURS, "active": None})
    pbx.new_call(phone="79160001111").history(status="Success", user="ivanov")  # wakes the writer
    assert rq_worker() <= 3  # the writer ran and stopped: it does not queue itself for the deadline
    assert callbacks_of(app)[0].escalated_at is None
    hours(**HOURS)  # active again: the sweep wakes the writer, which hands it on
    rq_worker()
    assert callbacks_of(app)[0].escalated_at is not None
