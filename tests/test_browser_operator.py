"""The operator's pages in real headless Chromium, by their Russian labels; full-page
screenshots land in instance/screenshots/ (not committed) for a person to look at."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from host_stub.testing import browser_add_sandbox_credentials, browser_login, needs_chromium

SHOTS = Path(__file__).resolve().parent.parent / "instance" / "screenshots"
pytestmark = needs_chromium


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def served(app, live_server):
    return app, live_server


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _configure(page, url, sandbox):
    browser_login(page, url)
    browser_add_sandbox_credentials(page, url, sandbox)
    page.get_by_label("Активировать интеграцию").check()
    page.get_by_label("Фильтровать по виртуальным номерам").check()
    page.get_by_label("74950000002").check()
    page.get_by_label("Ответственный по умолчанию").select_option(label="Мария Петрова")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки сохранены.")).to_be_visible()


def _missed_call(page, url, virtual_number):
    """In the simulator: a call on ``virtual_number`` to ivanov, missed; then the journal."""
    page.goto(url + "/simulator/")
    page.get_by_label("Виртуальный номер").select_option(virtual_number)
    page.get_by_label("Кому звонит", exact=True).select_option("ivanov")
    page.get_by_role("button", name="Позвонить").click()
    page.get_by_role("button", name="Пропущен").first.click()
    page.goto(url + "/plugins/megaplan/journal/")


def test_status_panel_secret_dialog_and_a_filtered_call_in_the_journal(served, browser_page,
                                                                       megaplan_sandbox):
    app, url = served
    page = browser_page
    _configure(page, url, megaplan_sandbox)
    page.get_by_role("button", name="Проверить подключение").click()
    expect(page.get_by_text("Вход в Мегаплан выполнен")).to_be_visible()
    expect(page.get_by_role("heading", name="Состояние интеграции")).to_be_visible()
    _shot(page, "settings-status")

    page.get_by_role("button", name="Создать").click()
    dialog = page.get_by_role("alertdialog")
    assert dialog.is_visible() and "больше он показан не будет" in dialog.inner_text()
    secret = page.locator("#new-secret").inner_text()
    assert len(secret) > 20 and dialog.get_by_role("button", name="Копировать").is_visible()
    # shown where «Создать» was pressed, in view (issue 28: it used to be 3,000 px above it)
    box, viewport = dialog.bounding_box(), page.viewport_size
    assert 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], box
    assert "Прежний ключ уже не действует" not in dialog.inner_text()  # the first key replaced none
    _shot(page, "settings-secret")
    page.reload()
    assert page.locator("#new-secret").count() == 0 and secret not in page.content()

    _missed_call(page, url, "74950000001")
    row = page.locator("tr.state-skipped")
    assert row.count() == 1 and row.is_visible()
    assert "не передан" in row.inner_text() and "74950000001 не в списке" in row.inner_text()
    _shot(page, "journal-filtered")


def test_the_sandbox_neither_logs_the_cabinet_out_nor_loses_what_is_typed(served, browser_page,
                                                                          megaplan_sandbox, rq_worker):
    app, url = served
    page = browser_page
    _configure(page, url, megaplan_sandbox)
    page.goto(megaplan_sandbox.url + "/")
    page.get_by_label("Адрес для звонка").fill("typed, not saved")
    page.get_by_role("button", name="Сохранить").click()  # the sandbox sets a cookie of its own
    page.get_by_label("Адрес для «Завершить»").fill("half-typed")
    before = megaplan_sandbox.state.request_count()
    megaplan_sandbox.state.create("CallInfo", {"providerId": "LIVE-1", "type": "in", "state": "calling"})
    page.wait_for_function("document.getElementById('live').innerText.includes('LIVE-1')", timeout=10000)
    assert page.get_by_label("Адрес для «Завершить»").input_value() == "half-typed"
    _shot(page, "sandbox")
    page.goto(url + "/plugins/megaplan/")
    expect(page.get_by_role("heading", name="Интеграция с Мегаплан")).to_be_visible()  # still logged in
    assert megaplan_sandbox.state.request_count() >= before


def test_rotating_the_secret_and_disabling_the_integration_ask_first(served, browser_page,
                                                                     megaplan_sandbox):
    app, url = served
    page = browser_page
    _configure(page, url, megaplan_sandbox)
    page.get_by_role("button", name="Создать").click()  # the first secret: nothing to lose
    first = page.locator("#new-secret").inner_text()

    def confirm(button, accept: bool) -> str:
        """Click, answer the browser's confirm(), and return what it asked."""
        with page.expect_event("dialog") as shown:
            page.once("dialog", lambda d: d.accept() if accept else d.dismiss())
            button.click()
        return shown.value.message

    assert "Прежний перестанет действовать" in confirm(page.get_by_role("button", name="Выпустить новый"), False)
    page.goto(url + "/plugins/megaplan/")
    assert "••••••••" + first[-4:] in page.content()  # dismissed: the secret stayed as it was

    page.goto(url + "/plugins/")
    off = page.locator("[data-plugin=megaplan]").get_by_role("button", name="Отключить")
    assert "Звонки перестанут передаваться" in confirm(off, False)
    page.goto(url + "/plugins/")  # dismissed: still on
    expect(off).to_be_visible()
    confirm(off, True)
    page.locator("[data-plugin=megaplan]").get_by_role("button", name="Подключить").wait_for()


def test_the_chosen_time_zone_is_the_one_the_journal_shows(served, browser_page, megaplan_sandbox):
    from zoneinfo import ZoneInfo

    from host_stub.db import db
    from megaplan_plugin.models import OutboxEntry
    app, url = served
    page = browser_page
    _configure(page, url, megaplan_sandbox)
    page.get_by_label("Часовой пояс").select_option(label="Владивосток (UTC+10)")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки сохранены.")).to_be_visible()
    _missed_call(page, url, "74950000002")
    expect(page.get_by_text("Время — Владивосток (UTC+10)")).to_be_visible()
    with app.app_context():
        started = db.session.execute(db.select(OutboxEntry.started_at)).scalar_one()
    if started.tzinfo is None:
        from datetime import timezone
        started = started.replace(tzinfo=timezone.utc)
    shown = page.locator("table.journal tbody tr").first.locator("td").first.inner_text()
    assert shown == started.astimezone(ZoneInfo("Asia/Vladivostok")).strftime("%d.%m.%Y %H:%M:%S")
    _shot(page, "journal-time-zone")
