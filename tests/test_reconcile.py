"""Calls whose push never reached the cabinet come back through the PBX history, exactly once."""
import random
from datetime import datetime, timedelta, timezone

import pytest

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")


def _rows(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxEntry).filter_by(kind=OutboxEntry.CALL)).scalars().all()


def _provider_ids(sandbox):
    return [c["providerId"] for c in sandbox.state.calls.values()]


def _reconcile(app, since):
    result = app.test_cli_runner().invoke(args=["megaplan", "reconcile", "--since", since.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def test_dropped_history_pushes_are_found_once_by_reconciliation(
        app, pbx, rq_worker, megaplan_sandbox, integration):
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    random.seed(20261126)  # the stub drops pushes at random: make the run repeatable
    app.extensions["cabinet"].pbx.push_loss["demo"] = 0.3
    calls = [pbx.new_call(phone=f"7916000{n:04d}") for n in range(30)]
    for call in calls:
        call.history(status="Success", user="ivanov")   # the PBX still answers 200: it cannot tell
    rq_worker()
    delivered = _provider_ids(megaplan_sandbox)
    assert 0 < len(delivered) < 30, "the switch should have dropped some pushes and kept others"

    app.extensions["cabinet"].pbx.push_loss["demo"] = 0.0
    output = _reconcile(app, since)
    assert f'"demo": {30 - len(delivered)}' in output
    rq_worker()
    assert sorted(_provider_ids(megaplan_sandbox)) == sorted(c.call_id for c in calls)  # all, once
    found = [r for r in _rows(app) if r.source == "reconcile"]
    assert len(found) == 30 - len(delivered) and {r.state for r in _rows(app)} == {"sent"}

    assert "найден сверкой с историей АТС" in integration().get("/plugins/megaplan/journal/").text
    assert '"demo": 0' in _reconcile(app, since)  # running it again adds nothing
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 30


def test_a_push_arriving_after_reconciliation_is_not_a_second_call(app, pbx, rq_worker, megaplan_sandbox, caplog):
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    app.extensions["cabinet"].pbx.push_loss["demo"] = 1.0
    call = pbx.new_call()
    call.history(status="Success", user="ivanov")
    app.extensions["cabinet"].pbx.push_loss["demo"] = 0.0
    with caplog.at_level("WARNING", logger="megaplan_plugin.delivery.reconcile"):
        _reconcile(app, since)
    assert "reconciliation found 1 call of demo" in caplog.text  # one call, not «1 calls»
    call.history(status="Success", user="ivanov")  # the late push after all
    rq_worker()
    assert _provider_ids(megaplan_sandbox) == [call.call_id]


def test_filtered_numbers_are_not_reconciled(app, pbx, rq_worker, megaplan_sandbox, integration):
    integration(filter_by_numbers="y", virtual_numbers="74950000002")
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    app.extensions["cabinet"].pbx.push_loss["demo"] = 1.0
    pbx.new_call(diversion="74950000001").history(status="Success", user="ivanov")
    kept = pbx.new_call(diversion="74950000002")
    kept.history(status="Success", user="ivanov")
    app.extensions["cabinet"].pbx.push_loss["demo"] = 0.0
    assert '"demo": 1' in _reconcile(app, since)
    rq_worker()
    assert _provider_ids(megaplan_sandbox) == [kept.call_id]


def test_the_simulators_switch_loses_pushes_and_the_settings_page_shows_the_reconciliation(
        app, integration, rq_worker, megaplan_sandbox):
    client = integration()
    assert "Кабинет недоступен: пуши теряются" in client.get("/simulator/").text
    assert post_form(client, "/simulator/push-loss", {"percent": "100"},
                     page="/simulator/").status_code == 302
    assert post_form(client, "/simulator/incoming", {
        "in-phone": "79161112233", "in-virtual_number": "74950000001", "in-users": ["ivanov"]},
        page="/simulator/").status_code == 302
    (live,) = app.extensions["cabinet"].pbx.live_calls("demo")
    post_form(client, "/simulator/action", {"call_id": live.call_id, "action": "missed"},
              page="/simulator/")
    assert "пуш потерян" in client.get("/simulator/").text
    assert _rows(app) == []

    since = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert app.test_cli_runner().invoke(args=["megaplan", "reconcile", "--since", since]).exit_code == 0
    rq_worker()
    assert _provider_ids(megaplan_sandbox) == [live.call_id]
    page = client.get("/plugins/megaplan/").text
    assert "Сверка с историей АТС" in page and "найдено звонков: 1" in page


def test_reconcile_refuses_a_date_it_cannot_read(app):
    result = app.test_cli_runner().invoke(args=["megaplan", "reconcile", "--since", "вчера"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
