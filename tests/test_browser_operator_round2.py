"""The operator's view, round two (issue 28), in real headless Chromium: each friction a
cabinet admin met on a first afternoon, walked through as they would."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from host_stub.testing import browser_add_sandbox_credentials, browser_login, needs_chromium, run_jobs

pytestmark = needs_chromium
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


def _connect(page, url, sandbox):
    """Login, «Подключить», the sandbox's credentials: the settings page, nothing saved yet."""
    browser_login(page, url)
    browser_add_sandbox_credentials(page, url, sandbox)
    expect(page.get_by_role("heading", name="Параметры интеграции")).to_be_visible()
    # the form went in the background (to keep a password on failure): the message still shows
    expect(page.get_by_text("Учетные данные «Песочница» добавлены.")).to_be_visible()


def test_refresh_keeps_ticks_errors_are_in_view_and_the_telephony_urls_copy_alone(
        live_server, browser_page, megaplan_sandbox):
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    _connect(page, live_server, megaplan_sandbox)
    # 1. «Обновить список» with everything ticked and nothing saved yet
    for label in ("Активировать интеграцию", "Создавать коммуникацию по звонку",
                  "Включить переадресацию на персонального менеджера"):
        page.get_by_label(label).check()
    page.get_by_label("Ответственный по умолчанию").select_option(label="Мария Петрова")
    page.get_by_role("button", name="Обновить список").click()
    expect(page.get_by_text("Список сотрудников Мегаплан обновлён.")).to_be_visible()
    expect(page.get_by_text("Изменения настроек ещё не сохранены")).to_be_visible()
    for label in ("Активировать интеграцию", "Создавать коммуникацию по звонку",
                  "Включить переадресацию на персонального менеджера"):
        expect(page.get_by_label(label)).to_be_checked()
    expect(page.get_by_label("Ответственный по умолчанию")).to_have_value("1000003")

    # 10. a failed save: the first field in error is in view and has the cursor
    page.get_by_label("Фильтровать по виртуальным номерам").check()
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки не сохранены")).to_be_visible()
    focused = page.evaluate("document.activeElement.closest('.has-error') && document.activeElement.closest('.has-error').id")
    assert focused == "field-virtual_numbers"
    box = page.locator("#field-virtual_numbers").bounding_box()
    assert 0 <= box["y"] <= page.viewport_size["height"], box

    # 2. the telephony app's addresses, alone, each with its own «Копировать»
    page.get_by_label("74950000001").check()
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки сохранены.")).to_be_visible()
    call_url = page.locator("#call-url").inner_text()
    assert call_url.startswith("http://") and " " not in call_url and call_url.endswith("/call")
    page.locator("#telephony-app").get_by_role("button", name="Копировать").first.click()
    expect(page.locator("#telephony-app").get_by_role("button", name="Скопировано")).to_have_count(1)
    assert page.evaluate("navigator.clipboard.readText()") == call_url


def test_a_retried_row_and_the_panel_refresh_themselves_and_rows_link_to_megaplan(
        app, live_server, browser_page, megaplan_sandbox, pbx, integration):
    integration(create_communication="y", create_client_on_incoming="y")
    page = browser_page
    browser_login(page, live_server)
    megaplan_sandbox.state.outage(3600)
    call = pbx.new_call(phone="79165554433")
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov")
    missed = pbx.new_call(phone="79031112233")
    missed.ring("ivanov", "petrova")
    missed.history(status="missed", user="pbx", duration=20, wait="20")
    run_jobs(app, scheduled=False)  # both wait: Megaplan is away
    page.goto(live_server + "/plugins/megaplan/journal/")
    row = page.locator(f'tr[data-call-id="{call.call_id}"]')
    expect(row).to_contain_text("ожидает")

    # 8. «Повторить» once Megaplan is back: the row turns «отправлен» with no reload
    megaplan_sandbox.state.outage(0)
    row.get_by_role("button", name="Повторить").click()
    row = page.locator(f'tr[data-call-id="{call.call_id}"]')
    expect(row).to_contain_text("ожидает")
    page.evaluate("window.__same_page = true")
    run_jobs(app)
    expect(row).to_contain_text("отправлен", timeout=15_000)
    assert page.evaluate("window.__same_page") is True  # refreshed in place, not reloaded

    # 7. the client and the communication link to their pages in the account's Megaplan
    expect(row).to_contain_text("клиент создан в Мегаплан этим звонком")
    client_link = row.locator("a.client-link")
    (client,) = [c for c in megaplan_sandbox.state.contractors.values() if "555-44-33" in c.get("firstName", "")]
    assert client_link.get_attribute("href") == f"{megaplan_sandbox.url}/crm/{client['id']}/card/"
    todo_link = row.locator("a.todo-link")
    expect(todo_link).to_contain_text("коммуникация №")

    # 5. a missed call names whom the PBX rang, not «звонок без сотрудника»
    missed_row = page.locator(f'tr[data-call-id="{missed.call_id}"]')
    expect(missed_row).to_contain_text("звонили: Иван Иванов, Мария Петрова", timeout=15_000)
    expect(missed_row).not_to_contain_text("звонок без сотрудника")
    expect(missed_row).to_contain_text("пропущенный")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "journal-round2.png"), full_page=True)

    with page.expect_popup() as opened:
        client_link.click()
    megaplan_page = opened.value
    expect(megaplan_page.locator(f"#contractor-{client['id']}")).to_be_visible()
    megaplan_page.close()

    # 8. the status panel's counts of today refresh in place too
    megaplan_sandbox.state.outage(3600)
    pbx.new_call(phone="79167778899").history(status="Success", user="ivanov")
    run_jobs(app, scheduled=False)
    page.goto(live_server + "/plugins/megaplan/")
    pending = page.locator('#today-counts [data-count="pending"]')
    expect(pending).to_have_text("1")
    megaplan_sandbox.state.outage(0)
    run_jobs(app)
    expect(pending).to_have_text("0", timeout=15_000)
    expect(page.locator('#today-counts [data-count="sent"]')).to_have_text("3")


def test_deactivation_asks_and_the_calls_of_that_time_can_be_sent_after_all(
        app, live_server, browser_page, megaplan_sandbox, pbx, integration):
    integration()
    page = browser_page
    browser_login(page, live_server)
    page.goto(live_server + "/plugins/megaplan/")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_label("Активировать интеграцию").uncheck()
    page.get_by_role("button", name="Сохранить").click()
    assert asked and "Выключить интеграцию?" in asked[0]
    page.reload()
    expect(page.get_by_label("Активировать интеграцию")).to_be_checked()  # not switched off

    page.once("dialog", lambda d: answer(d, True))
    page.get_by_label("Активировать интеграцию").uncheck()
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки сохранены.")).to_be_visible()
    call = pbx.new_call(phone="79161234567")
    call.ring("ivanov").answer("ivanov")
    call.history(status="Success", user="ivanov")
    page.goto(live_server + "/plugins/megaplan/journal/")
    expect(page.locator(f'tr[data-call-id="{call.call_id}"]')).to_contain_text("не передан")

    page.goto(live_server + "/plugins/megaplan/")
    page.get_by_label("Активировать интеграцию").check()
    page.get_by_role("button", name="Сохранить").click()
    offer = page.locator("#transfer-skipped")
    expect(offer).to_contain_text("не передано звонков: 1")
    offer.get_by_role("button", name="Передать звонки за время отключения").click()
    expect(page.get_by_text("Передаются в Мегаплан звонки за время отключения: 1.")).to_be_visible()
    run_jobs(app)
    assert [c["providerId"] for c in megaplan_sandbox.state.calls.values()] == [call.call_id]
    page.goto(live_server + "/plugins/megaplan/")
    expect(page.locator("#transfer-skipped")).to_have_count(0)  # offered once

    # 13. logging out says so
    page.get_by_role("button", name="Выйти").click()
    expect(page.get_by_text("Вы вышли из кабинета.")).to_be_visible()


def test_the_small_ones_in_the_browser(live_server, browser_page, megaplan_sandbox):
    """13: the login's «next», the page of a plugin not connected, the simulator's first
    employee, the sandbox's Moscow time and «Выполнено»."""
    page = browser_page
    page.goto(live_server + "/plugins/")
    assert page.url.endswith("/login?next=/plugins/")
    browser_login(page, live_server)
    page.goto(live_server + "/plugins/megaplan/journal/")
    expect(page.get_by_text("настройки, журнал звонков и отчёт по пропущенным")).to_be_visible()
    page.goto(live_server + "/simulator/")
    assert page.get_by_label("Кому звонит", exact=True).evaluate("s => s.selectedOptions.length") == 1
    megaplan_sandbox.state.create("CallInfo", {"providerId": "P1", "type": "miss", "state": "finished", "timeFrom": {
        "contentType": "DateTime", "value": "2026-12-05T09:00:00+00:00"}})
    page.goto(megaplan_sandbox.url + "/")
    expect(page.get_by_role("columnheader", name="Выполнено")).to_be_visible()
    expect(page.get_by_text("05.12.2026 12:00:00")).to_be_visible()
    expect(page.get_by_role("cell", name="пропущенный", exact=True)).to_be_visible()
