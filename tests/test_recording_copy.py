"""«Копировать записи в Мегаплан» (issue 25): the recording as a file in Megaplan, attached to
the call's communication or the client's card; failures retried, nothing uploaded twice."""
import hashlib

from host_stub.db import db
from megaplan_plugin.models import OutboxEntry


def _answered(pbx, phone="79161234567"):
    call = pbx.new_call(phone=phone)
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov", duration=42,
                 link=f"http://localhost/pbx/demo/recordings/{call.call_id}")
    return call


def _row(app, call_id) -> OutboxEntry:
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry).filter_by(kind="call", call_id=call_id)).scalar_one()
        db.session.expunge(row)
        return row


def _sha256(app, call_id) -> str:
    found = app.extensions["cabinet"].pbx.recording("demo", call_id)
    try:
        return hashlib.sha256(b"".join(found.chunks)).hexdigest()
    finally:
        found.close()


def test_the_recording_is_copied_and_attached_to_the_calls_communication(app, pbx, rq_worker, megaplan_sandbox,
                                                                        integration):
    integration(copy_recordings="y", create_communication="y")
    call = _answered(pbx)
    rq_worker()
    state = megaplan_sandbox.state
    (file,) = state.files.values()
    assert file["sha256"] == _sha256(app, call.call_id) and file["name"].endswith(".wav")
    (todo,) = state.todos.values()
    assert [a["id"] for a in todo["attaches"]] == [file["id"]]
    row = _row(app, call.call_id)
    assert row.copy_state == "copied" and row.copy_file_id == file["id"]
    assert "запись скопирована в Мегаплан" in row.reason and "к коммуникации" in row.reason


def test_without_a_communication_the_copy_goes_to_the_client_card(app, pbx, rq_worker, megaplan_sandbox,
                                                                 integration):
    integration(copy_recordings="y")
    call = _answered(pbx)  # 79161234567: «Кузнецов Сергей» in the sandbox
    rq_worker()
    state = megaplan_sandbox.state
    (file,) = state.files.values()
    client = next(c for c in state.contractors.values() if c.get("lastName") == "Кузнецов")
    assert [a["id"] for a in client["attaches"]] == [file["id"]]
    assert "к карточке клиента" in _row(app, call.call_id).reason


def test_an_upload_that_fails_or_loses_its_answer_is_retried_and_makes_one_attachment(
        app, pbx, rq_worker, megaplan_sandbox, integration):
    integration(copy_recordings="y", create_communication="y")
    state = megaplan_sandbox.state
    state.fail_next(1, 500, path_prefix="/api/file")
    state.lose_answers_next(1, path_prefix="/api/file")  # the next one uploads, its answer is lost
    call = _answered(pbx)
    rq_worker()
    row = _row(app, call.call_id)
    assert row.copy_state == "copied"
    (todo,) = state.todos.values()
    assert len(todo["attaches"]) == 1 and todo["attaches"][0]["id"] == row.copy_file_id
    assert state.files[row.copy_file_id]["sha256"] == _sha256(app, call.call_id)
    assert len(state.files) <= 2  # the lost answer's file may stay behind, never attached twice


def test_a_copy_whose_job_redis_lost_is_queued_by_the_sweep(app, pbx, rq_worker, megaplan_sandbox, integration):
    from datetime import timedelta

    from megaplan_plugin.delivery import queues
    from megaplan_plugin.delivery.outbox import sweep
    integration(copy_recordings="y", create_communication="y")
    call = _answered(pbx)
    state = megaplan_sandbox.state
    state.fail_next(1, 500, path_prefix="/api/file")
    rq_worker(scheduled=False)  # written; the copy failed once and waits for its retry
    conn = app.extensions["megaplan"].redis
    for name in queues.QUEUES:
        queues.queue(name, conn).empty()
    conn.flushdb()  # Redis loses everything
    with app.app_context():
        row = db.session.execute(db.select(OutboxEntry).filter_by(kind="call", call_id=call.call_id)).scalar_one()
        assert row.copy_state == "pending"
        row.copy_next_at = row.copy_next_at - timedelta(hours=1)
        db.session.commit()
        assert sweep(db)["copies"] == 1
    rq_worker(scheduled=False)
    assert _row(app, call.call_id).copy_state == "copied" and len(state.files) == 1


def test_no_copy_unless_the_account_asks_for_it(app, pbx, rq_worker, megaplan_sandbox, integration):
    call = _answered(pbx)
    rq_worker()
    assert megaplan_sandbox.state.files == {} and _row(app, call.call_id).copy_state is None


def test_an_upload_refused_for_its_token_refreshes_it_and_is_retried(app, pbx, rq_worker, megaplan_sandbox,
                                                                    integration):
    """A 401 on the upload is an expired token, not a refused file: the body streams once, so the
    token is refreshed and the job tries again."""
    integration(copy_recordings="y", create_communication="y")
    state = megaplan_sandbox.state
    state.fail_next(1, 401, path_prefix="/api/file")
    call = _answered(pbx)
    issued = set(state.access_tokens)
    rq_worker()
    row = _row(app, call.call_id)
    assert row.copy_state == "copied", row.reason
    assert set(state.access_tokens) - issued  # a token refreshed, not the same one sent again
    (todo,) = state.todos.values()
    assert [a["id"] for a in todo["attaches"]] == [row.copy_file_id]
    assert state.files[row.copy_file_id]["sha256"] == _sha256(app, call.call_id)
