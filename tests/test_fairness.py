"""One account's backlog never delays the other accounts' calls: accounts take turns."""
from megaplan_plugin.delivery import queues, writer


def test_a_backlog_is_one_writer_job_and_another_accounts_call_is_queued_right_behind_it(
        app, pbx, integration):
    for n in range(30):
        pbx.new_call(phone=f"7916222{n:04d}").history(status="Success", user="ivanov")
    with app.app_context():
        queued = queues.queue(queues.SYNC_QUEUE).jobs
        assert [j.args for j in queued] == [("demo",)]  # 30 calls, one writer waiting
        queues.wake_writer("other")
        assert [j.args for j in queues.queue(queues.SYNC_QUEUE).jobs] == [("demo",), ("other",)]


def test_a_writer_works_a_slice_and_goes_to_the_back_of_the_queue(
        app, pbx, integration, rq_worker, megaplan_sandbox, monkeypatch):
    monkeypatch.setattr(writer, "SLICE_CALLS", 5)
    turns = []
    real = writer._drain

    def drain(account_id, lock):
        turns.append(account_id)
        return real(account_id, lock)
    monkeypatch.setattr(writer, "_drain", drain)
    for n in range(12):
        pbx.new_call(phone=f"7916111{n:04d}").history(status="Success", user="ivanov")
    with app.app_context():
        queues.wake_writer("other")  # another account's work arrives behind the backlog
    rq_worker(scheduled=False)
    assert turns[:3] == ["demo", "other", "demo"]  # the backlog's second slice waited its turn
    assert len(megaplan_sandbox.state.calls) == 12
