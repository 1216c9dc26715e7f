"""Redis down while the cabinet runs: every button answers in Russian and changes nothing."""
import re

import sqlalchemy as sa

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.delivery import queues

SETTINGS = "/plugins/megaplan/"
JOURNAL = "/plugins/megaplan/journal/"


def snapshot(app) -> dict:
    """Every plugin table's rows, as plain SQL sees them."""
    with app.app_context():
        tables = [t for t in sa.inspect(db.engine).get_table_names() if t.startswith("megaplan_")]
        return {t: sorted(map(repr, db.session.execute(sa.text(f"SELECT * FROM {t}")).all())) for t in tables}


def test_buttons_with_redis_down_say_so_and_change_nothing(configured, integration, app, pbx, megaplan_sandbox,
                                                           rq_worker):
    megaplan_sandbox.state.fail_next(5, status=422, path_prefix="/api/v3/callInfo/history")
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker()  # one call «ошибка», to be sent again
    megaplan_sandbox.state._faults.clear()
    post_form(configured, SETTINGS + "secret", {}, page=SETTINGS)  # a secret that works
    with app.app_context():
        row_id = db.session.execute(sa.text("SELECT id FROM megaplan_outbox WHERE state = 'failed'")).scalar_one()
    before = snapshot(app)

    state = app.extensions["megaplan"]
    real, state.redis = state.redis, queues.connect("redis://127.0.0.1:1/0")
    try:
        for url, page, expected in [
            (SETTINGS + "secret", SETTINGS, "Новый ключ не создан, прежний по-прежнему действует"),
            (JOURNAL + f"{row_id}/retry", JOURNAL, "Звонки не поставлены в очередь заново"),
            (JOURNAL + "retry-failed", JOURNAL, "Звонки не поставлены в очередь заново"),
        ]:
            response = post_form(configured, url, {}, page=page)
            assert response.status_code == 302, url
            shown = configured.get(response.headers["Location"]).text
            flashes = [line.strip() for line in shown.splitlines() if 'class="flash' in line]
            assert "Очередь задач интеграции (Redis) сейчас недоступна" in shown and expected in shown, (url, flashes)
            assert snapshot(app) == before, url
        saved = post_form(configured, SETTINGS, {"credential_id": "1", "active": "y", "route_to_manager": "y",
                                                 "default_responsible_id": "1000003"}, page=SETTINGS)
        assert saved.status_code == 200 and "Настройки не сохранены." in saved.text
        (box,) = re.findall(r'<input[^>]*name="route_to_manager"[^>]*>', saved.text)
        assert "checked" in box  # the form as typed
        assert snapshot(app) == before
        panel = configured.get(SETTINGS)
        assert panel.status_code == 200 and 'id="queue-down"' in panel.text
        assert "звонки сохраняются" in configured.get(SETTINGS + "status.json").get_json()["queue"]
    finally:
        state.redis = real
    assert 'id="queue-down"' not in configured.get(SETTINGS).text
    assert configured.get(SETTINGS + "status.json").get_json()["queue"] is None
