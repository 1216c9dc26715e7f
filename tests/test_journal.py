"""The sync journal page and what the live queue drops."""
from datetime import datetime, timedelta, timezone

import pytest

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.delivery import queues
from megaplan_plugin.models import OutboxEntry
from megaplan_plugin.web import timezones

pytestmark = pytest.mark.usefixtures("integration")


def test_journal_lists_calls_with_states_and_filters(configured, pbx, rq_worker, megaplan_sandbox, app):
    assert "Журнал синхронизации" in configured.get("/plugins/megaplan/").text
    sent = pbx.new_call(phone="79161234567")
    sent.history(status="Success", user="ivanov")
    rq_worker()
    megaplan_sandbox.state.fail_next(1, status=422, path_prefix="/api/v3/callInfo/history")
    failed = pbx.new_call(phone="79035551234")
    failed.history(status="missed", user="pbx", duration=0)
    rq_worker()

    page = configured.get("/plugins/megaplan/journal/").text
    assert sent.call_id in page and failed.call_id in page
    assert "отправлен" in page and "ошибка" in page and "Injected failure" in page
    only_failed = configured.get("/plugins/megaplan/journal/?state=failed").text
    assert failed.call_id in only_failed and sent.call_id not in only_failed
    today = timezones.today("Europe/Moscow")  # the account's time zone, by default
    assert sent.call_id in configured.get(f"/plugins/megaplan/journal/?date={today}").text
    other_day = (today - timedelta(days=3)).isoformat()
    assert sent.call_id not in configured.get(f"/plugins/megaplan/journal/?date={other_day}").text
    # Junk filters are ignored, not errors.
    assert configured.get("/plugins/megaplan/journal/?state=<x>&date=tomorrow").status_code == 200


def test_only_failed_calls_can_be_retried(configured, pbx, rq_worker, app):
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()
    with app.app_context():
        row_id = db.session.execute(db.select(OutboxEntry.id)).scalar_one()
    response = post_form(configured, f"/plugins/megaplan/journal/{row_id}/retry", {},
                         page="/plugins/megaplan/journal/")
    assert response.status_code == 302
    assert "только звонок с ошибкой" in configured.get("/plugins/megaplan/journal/").text
    assert post_form(configured, "/plugins/megaplan/journal/999/retry", {},
                     page="/plugins/megaplan/journal/").status_code == 404


def test_other_account_sees_none_of_demos_calls(configured, pbx, rq_worker, app, client, auth, enable_plugin):
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    rq_worker()
    with app.app_context():
        row_id = db.session.execute(db.select(OutboxEntry.id)).scalar_one()
    auth.logout()
    auth.login("other")
    enable_plugin("other")
    assert call.call_id not in client.get("/plugins/megaplan/journal/").text
    assert post_form(client, f"/plugins/megaplan/journal/{row_id}/retry", {},
                     page="/plugins/megaplan/journal/").status_code == 404


def test_a_stale_popup_is_dropped_but_the_history_still_arrives(pbx, rq_worker, megaplan_sandbox, app):
    call = pbx.new_call()
    late = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    payload = {"account_id": "demo", "call_id": call.call_id, "direction": "in",
               "client_phone": "79161234567", "virtual_number": "74950000001",
               "user": {"login": "ivanov", "name": "Иван Иванов", "ext": "101", "telnum": None},
               "at": late, "group_name": None}
    with app.app_context():
        queues.enqueue_live(payload, "call_started")
    rq_worker()
    assert megaplan_sandbox.state.widget_events == [] and megaplan_sandbox.state.calls == {}
    call.history(status="Success", user="ivanov")
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 1
