"""The operator's view: the status panel, its JSON twin, «Проверить подключение», and
credential errors that tell the truth."""
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from host_stub.testing import SANDBOX_LOGIN, SANDBOX_PASSWORD, post_form


def test_the_status_panel_and_status_json_tell_what_happened_today(app, pbx, integration, rq_worker,
                                                                   megaplan_sandbox):
    client = integration()
    pbx.new_call().history(status="Success", user="ivanov")
    pbx.new_call(diversion="74950000009").history(status="Success", user="ivanov")
    rq_worker()
    megaplan_sandbox.state.outage(3600)
    pbx.new_call().history(status="Success", user="ivanov")
    rq_worker(scheduled=False)
    response = client.get("/plugins/megaplan/status.json")
    status = response.get_json()
    # Russian as it is, not \u escapes: a person opening it reads it (issue 28)
    assert "Мегаплан временно недоступен".encode() in response.data and b"\\u" not in response.data
    assert status["active"] is True and status["employees"] >= 3
    assert status["today"] == {"pending": 1, "sent": 2, "failed": 0, "skipped": 0}
    assert "Мегаплан временно недоступен (503)" in status["last_error"]
    assert status["oldest_waiting_seconds"] is not None and status["last_sent_at"]
    page = client.get("/plugins/megaplan/").text
    text = re.sub(r"<[^>]+>", "", page)
    assert "Состояние интеграции" in page and "отправлено: 2, ожидает: 1" in text
    assert "Мегаплан временно недоступен" in page


def test_check_connection_reports_login_employees_and_telephony(app, integration, megaplan_sandbox):
    client = integration()
    response = post_form(client, "/plugins/megaplan/check", {}, page="/plugins/megaplan/")
    assert response.status_code == 302
    page = client.get("/plugins/megaplan/").text
    assert "Вход в Мегаплан выполнен" in page and "Сотрудников в Мегаплан" in page
    assert "Приложение телефонии настроено" in page
    megaplan_sandbox.state.outage(3600)
    post_form(client, "/plugins/megaplan/check", {}, page="/plugins/megaplan/")
    assert "Мегаплан не ответил как ожидалось" in client.get("/plugins/megaplan/").text


def test_status_json_is_the_logged_in_accounts_only(client, auth, enable_plugin):
    enable_plugin("other")
    auth.login("other")
    assert client.get("/plugins/megaplan/status.json").get_json()["active"] is False


class _NotMegaplan(BaseHTTPRequestHandler):
    def _answer(self):
        body = b"<html><body>It works!</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def not_megaplan():
    server = HTTPServer(("127.0.0.1", 0), _NotMegaplan)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("case,expected", [
    ("unknown domain", "Домен не найден"),
    ("nobody listening", "не отвечает"),
    ("not megaplan", "отвечает не Мегаплан (ответ 404)"),
    ("wrong password", "Неверный логин или пароль"),
    ("no api rights", "нет прав на API"),
])
def test_credential_errors_tell_the_truth(case, expected, logged_in, enable_plugin, megaplan_sandbox,
                                          not_megaplan):
    enable_plugin()
    domain, password = megaplan_sandbox.url, SANDBOX_PASSWORD
    if case == "unknown domain":
        domain = "http://megaplan-nobody.invalid"
    elif case == "nobody listening":
        domain = _closed_port_url()
    elif case == "not megaplan":
        domain = not_megaplan
    elif case == "wrong password":
        password = "not-the-password"
    else:
        megaplan_sandbox.state.fail_next(1, status=403, path_prefix="/api/v3/currentUser")
    response = post_form(logged_in, "/plugins/megaplan/credentials/new", {
        "title": "Проверка", "login": SANDBOX_LOGIN, "password": password, "domain": domain})
    assert response.status_code == 400
    assert expected in response.get_data(as_text=True)


def test_the_login_page_after_a_protected_page_keeps_no_stray_question_mark(client):
    response = client.get("/plugins/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login?next=/plugins/")


def test_the_journal_of_a_plugin_not_connected_speaks_of_its_pages_not_only_settings(logged_in):
    response = logged_in.get("/plugins/megaplan/journal/")
    assert response.status_code == 404
    assert "настройки, журнал звонков и отчёт по пропущенным" in response.text


def test_a_lookup_that_finds_nothing_is_not_a_warning_in_the_log(app, integration, megaplan_sandbox, caplog):
    from megaplan_plugin.calls.connection import client_for
    from megaplan_plugin.models import Credential
    with app.app_context():
        client = client_for(db_session(app).get(Credential, 1))
        with caplog.at_level("DEBUG", logger="megaplan_plugin.megaplan.client"):
            assert client.get_call_by_provider("NO-SUCH-CALL") is None
    records = [r for r in caplog.records if r.name == "megaplan_plugin.megaplan.client"]
    assert records and all(r.levelname == "DEBUG" for r in records)
    assert not any("None" in r.getMessage() for r in records)


def db_session(app):
    from host_stub.db import db
    return db.session


def test_the_sandbox_page_shows_moscow_time_and_whether_a_todo_is_done(megaplan_sandbox):
    import requests
    state = megaplan_sandbox.state
    state.create("CallInfo", {"providerId": "P1", "type": "in", "state": "finished",
                              "timeFrom": {"contentType": "DateTime", "value": "2026-12-05T09:00:00+00:00"}})
    todo = state.create("Todo", {"name": "Перезвонить"})
    todo["timeFinished"] = {"contentType": "DateTime", "value": "2026-12-05T10:30:00+00:00"}
    page = requests.get(megaplan_sandbox.url + "/", timeout=10).text
    assert "05.12.2026 12:00:00" in page and "входящий" in page and "завершён" in page
    assert "<th>Выполнено</th>" in page and "05.12.2026 13:30:00" in page


def test_the_simulator_starts_with_an_employee_to_ring(logged_in):
    page = logged_in.get("/simulator/").text
    ring = page.split('name="in-users"', 1)[1].split("</select>", 1)[0]
    assert ring.count("selected") == 1
