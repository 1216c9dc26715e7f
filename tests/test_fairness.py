"""One account's backlog never delays the other accounts' calls."""
import pytest

from megaplan_plugin.delivery import queues


@pytest.mark.parametrize("share", [4, 1])
def test_an_accounts_backlog_takes_a_few_slots_and_others_go_straight_to_the_queue(app, share):
    app.config["MEGAPLAN_JOBS_PER_ACCOUNT"] = share
    with app.app_context():
        for n in range(30):
            queues.enqueue_call("demo", f"BACKLOG-{n}")
        queues.enqueue_call("other", "OTHER-1")
        queued = queues.queue(queues.SYNC_QUEUE).job_ids
    demo_jobs = [j for j in queued if j != queues.call_job_id("other", "OTHER-1")]
    assert len(demo_jobs) == share  # the rest wait aside
    assert queues.call_job_id("other", "OTHER-1") in queued  # not behind 30 of demo's


def test_the_backlog_is_still_delivered_in_full(app, pbx, integration, rq_worker, megaplan_sandbox):
    for n in range(12):
        pbx.new_call(phone=f"7916111{n:04d}").history(status="Success", user="ivanov")
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 12
