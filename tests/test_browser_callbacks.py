"""The missed-calls report in real headless Chromium (issue 26): a scripted day of 20 calls,
then every figure read off the page as a manager sees it."""
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from host_stub.testing import needs_chromium

pytestmark = needs_chromium
MSK = ZoneInfo("Europe/Moscow")
SHOTS = Path(__file__).resolve().parent.parent / "instance" / "screenshots"
EVERY_DAY = [str(d) for d in range(7)]


def _yesterday(hour: int, minute: int) -> datetime:
    """Yesterday in Moscow: every deadline of the day (at most 17:30) is past, whenever the test runs."""
    day = datetime.now(MSK).date() - timedelta(days=1)
    return datetime.combine(day, time(hour, minute), MSK).astimezone(timezone.utc)


def _script_day(pbx):
    def miss(phone, hour, minute, rung):
        call = pbx.new_call(phone=phone)
        call.ring(rung)
        call.history(status="missed", user="pbx", duration=20, wait="20", start=_yesterday(hour, minute))

    def out(phone, hour, minute, user):
        pbx.new_call(phone=phone, direction="out").history(status="Success", user=user, duration=60,
                                                           start=_yesterday(hour, minute))

    def answered(phone, hour, minute, user):
        call = pbx.new_call(phone=phone)
        call.ring(user).answer(user)
        call.history(status="Success", user=user, duration=60, start=_yesterday(hour, minute))

    miss("79160000001", 9, 0, "petrova"); out("79160000001", 9, 20, "ivanov")        # in time, 20 min
    miss("79160000002", 9, 10, "petrova"); miss("79160000002", 9, 15, "ivanov")
    out("79160000002", 10, 0, "ivanov")                                                # late (due 9:40), 50 min
    miss("79160000003", 10, 0, "ivanov"); answered("79160000003", 10, 5, "petrova")  # the client again
    miss("79160000004", 11, 0, "petrova")                                              # never: overdue
    miss("79160000005", 12, 0, "ivanov"); out("79160000005", 12, 10, "petrova")      # in time, 10 min
    miss("79160000006", 13, 0, "petrova")                                              # never: overdue
    for n in range(9):  # answered calls of other numbers: no callback of theirs
        (answered if n % 2 else out)(f"7916111000{n}", 14, n * 5, "ivanov")
    # 20 calls: 7 missed, 13 answered (4 of them reach a missed number)


def test_the_report_after_a_scripted_day_shows_every_figure(app, live_server, pbx, rq_worker, megaplan_sandbox,
                                                            integration, browser_page):
    integration(create_communication="y", communication_types=["missed"], callback_within="30",
                work_start="09:00", work_end="18:00", work_days=EVERY_DAY, time_zone="Europe/Moscow")
    _script_day(pbx)
    rq_worker()
    assert len(megaplan_sandbox.state.calls) == 20
    page = browser_page
    page.goto(live_server + "/login")
    page.get_by_label("Логин").fill("demo")
    page.get_by_label("Пароль").fill("demo")
    page.get_by_role("button", name="Войти").click()
    page.goto(live_server + "/plugins/megaplan/")
    expect(page.locator("#missed-today")).to_contain_text("пропущено звонков: 0")  # the day was yesterday
    page.locator("#callbacks-link").click()
    expect(page.get_by_role("heading", name="Пропущенные звонки")).to_be_visible()

    def figure(key, period):
        return page.locator(f'tr[data-figure="{key}"] td[data-period="{period}"]').inner_text()
    expected = {"missed": "7", "callbacks": "6", "in_time": "2", "late": "1", "client": "1", "open": "2",
                "overdue": "2", "median": "20 мин"}
    for period in ("7", "30"):
        assert {key: figure(key, period) for key in expected} == expected, period
    assert {key: figure(key, "today") for key in expected} == {**{k: "0" for k in expected}, "median": "—"}

    people = {row.locator("th").inner_text(): [row.locator(f'td[data-figure="{f}"]').inner_text()
                                               for f in ("rung", "called_back", "in_time")]
              for row in page.locator("#callback-employees tbody tr").all()}
    assert people == {"Мария Петрова": ["4", "1", "1"], "Иван Иванов": ["3", "2", "1"]}

    SHOTS.mkdir(parents=True, exist_ok=True)  # for a person to look at (not committed)
    page.screenshot(path=str(SHOTS / "missed-calls-report.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Скачать CSV").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    assert "Перезвонили в срок;0;2;2" in text and "Мария Петрова;4;1;1" in text
