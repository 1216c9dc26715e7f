"""Who is calling and who should answer (issue 27) in real headless Chromium: the routing
options on the settings page, «Выбрать» for a number several clients share, the customer's
rating and the reason a call went past an absent manager, as a cabinet admin sees them."""
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from host_stub.testing import browser_login, needs_chromium, run_jobs
from megaplan_plugin.delivery import queues

pytestmark = needs_chromium
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


def test_routing_options_a_choice_a_rating_and_an_absence_in_the_browser(
        app, live_server, pbx, rq_worker, megaplan_sandbox, integration, browser_page):
    state = megaplan_sandbox.state
    alpha = state.add_contractor("ContractorCompany", {"name": "ООО Альфа"}, "+7 916 111-22-33", "1000002")
    state.add_contractor("ContractorHuman", {"firstName": "Олег", "lastName": "Орлов"}, "89161112233", "1000004")
    integration(create_communication="y")
    page = browser_page
    browser_login(page, live_server)

    # the settings page: the options under «переадресация» show once it is ticked, and are kept
    page.goto(live_server + "/plugins/megaplan/")
    deal_first = page.get_by_label("Сначала ответственный по сделке")
    expect(deal_first).to_be_hidden()
    page.get_by_label("Включить переадресацию на персонального менеджера").check()
    expect(deal_first).to_be_visible()
    deal_first.check()
    page.get_by_label("Если менеджер недоступен").select_option(label="направить ответственному по умолчанию")
    page.get_by_label("Связывать звонок с открытой сделкой клиента").check()
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Настройки сохранены.")).to_be_visible()
    expect(page.get_by_label("Сначала ответственный по сделке")).to_be_checked()
    expect(page.get_by_label("Если менеджер недоступен")).to_have_value("default")

    # the index (with the deals now wanted) and Иван Иванов on vacation
    with app.app_context():
        queues.enqueue_index(1)
    last_day = date.today() + timedelta(days=3)
    state.set_absence("1000002", vacation=(date.today().isoformat(), last_day.isoformat()))
    run_jobs(app)

    # «Выбрать» on the journal: ООО Альфа for the shared number
    page.goto(live_server + "/plugins/megaplan/journal/")
    shared = page.locator("#shared-numbers")
    expect(shared.get_by_role("heading", name="Номера с несколькими клиентами")).to_be_visible()
    shared.locator(f'tr[data-contractor="{alpha["id"]}"]').get_by_role("button", name="Выбрать").click()
    expect(page.get_by_text("выбран клиент «ООО Альфа»")).to_be_visible()
    expect(page.locator(f'#shared-numbers tr[data-contractor="{alpha["id"]}"]')).to_contain_text("выбран")

    # a call of ООО Альфа: its manager Иванов is away, the default responsible takes it; rated 4
    assert pbx.new_call(phone="79161112233").contact() == {"responsible": "petrova", "contact_name": "ООО Альфа"}
    call = pbx.new_call(phone="79161112233")
    call.ring("petrova").answer("petrova")
    call.history(status="Success", user="petrova", rating="4")
    rq_worker()
    page.goto(live_server + "/plugins/megaplan/journal/")
    row = page.locator(f'tr[data-call-id="{call.call_id}"]')
    expect(row.locator("td.rating")).to_have_text("4 из 5")
    expect(row).to_contain_text(f"ответственный за клиента Иван Иванов в отпуске до {last_day:%d.%m.%Y}: "
                                "звонок направлен ответственному по умолчанию Мария Петрова")
    expect(row).to_contain_text("выбран вручную «ООО Альфа»")

    # ООО Ромашка: its open deal's manager Сидоров is rung before Петрова, its responsible
    deal_call = pbx.new_call(phone="74951234567")
    assert deal_call.contact() == {"responsible": "sidorov", "contact_name": "ООО Ромашка"}
    deal_call.ring("sidorov").answer("sidorov")
    deal_call.history(status="Success", user="sidorov")
    rq_worker()
    page.goto(live_server + "/plugins/megaplan/journal/")
    row = page.locator(f'tr[data-call-id="{deal_call.call_id}"]')
    expect(row).to_contain_text("звонок направлен менеджеру сделки Пётр Сидоров")
    expect(row).to_contain_text("коммуникация связана со сделкой «Поставка оборудования»")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "journal-who-answers.png"), full_page=True)

    # Megaplan's side (the sandbox's page): the communications with the deal and the rating
    page.goto(megaplan_sandbox.url + "/")
    expect(page.locator("tr[data-todo]").filter(has_text="ООО Ромашка")).to_contain_text(
        "сделка «Поставка оборудования»")
    expect(page.locator("tr[data-todo]").filter(has_text="ООО Альфа")).to_contain_text("Оценка клиента: 4 из 5")
