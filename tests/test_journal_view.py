"""The journal answers «почему звонок не попал в Мегаплан?»: names, numbers, counts, time zone,
pages, «Повторить все ошибки», CSV, and a filter that hides everything says so."""
import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from host_stub.db import db
from host_stub.testing import post_form
from megaplan_plugin.models import OutboxEntry

pytestmark = pytest.mark.usefixtures("integration")
JOURNAL = "/plugins/megaplan/journal/"


def add_rows(app, n, *, start, step=timedelta(minutes=1), state="sent", account="demo", **extra):
    """n finished calls of the account straight into the outbox, newest last."""
    with app.app_context():
        db.session.execute(sa.insert(OutboxEntry), [dict(
            kind="call", source="push", account_id=account, call_id=f"{account}-{state}-{start:%H%M}-{i}",
            direction="in", client_phone=f"7916{i:07d}", status="answered", started_at=start + i * step,
            record={"user": {"name": "Иван Иванов"}}, state=state, attempts=1, created_at=start,
            updated_at=start, **extra) for i in range(n)])
        db.session.commit()


def call_ids(page: str) -> list[str]:
    return re.findall(r'data-call-id="([^"]+)"', page)


def test_a_row_names_the_client_formats_the_number_and_folds_megaplans_own_text(
        configured, pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.fail_next(1, status=422, path_prefix="/api/v3/callInfo/history")
    pbx.new_call(phone="79161234567").history(status="Success", user="ivanov")  # Кузнецов Сергей
    rq_worker()  # the client is known from the index even though the call failed
    page = configured.get(JOURNAL).text
    assert "Кузнецов Сергей" in page and "+7 (916) 123-45-67" in page
    assert "Мегаплан отклонил данные (422)" in page
    assert re.search(r"<details class=\"raw-error\"><summary>ответ Мегаплан</summary><code>Injected failure", page)


def test_times_and_the_date_filter_are_in_the_accounts_time_zone(configured, app, integration):
    # 22:30 UTC on 1 March is 01:30 on 2 March in Moscow and 07:30 on 2 March in Vladivostok.
    add_rows(app, 1, start=datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc))
    page = configured.get(JOURNAL).text
    assert "02.03.2026 01:30:00" in page and "Москва (UTC+3)" in page
    assert len(call_ids(configured.get(JOURNAL + "?date=2026-03-02").text)) == 1
    assert call_ids(configured.get(JOURNAL + "?date=2026-03-01").text) == []
    integration(time_zone="Asia/Vladivostok")
    assert "02.03.2026 08:30:00" in configured.get(JOURNAL).text
    integration(time_zone="UTC")
    assert "01.03.2026 22:30:00" in configured.get(JOURNAL).text
    assert len(call_ids(configured.get(JOURNAL + "?date=2026-03-01").text)) == 1
    # Not a zone from the list: the form says so beside the field and nothing changes.
    response = post_form(configured, "/plugins/megaplan/", {
        "credential_id": "1", "active": "y", "default_responsible_id": "1000003", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400 and 'id="field-time_zone"' in response.text
    assert "01.03.2026 22:30:00" in configured.get(JOURNAL).text


def test_counts_above_the_table_and_a_filter_that_hides_everything(configured, app):
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    add_rows(app, 3, start=start)
    add_rows(app, 2, start=start, state="failed", last_error="Мегаплан временно недоступен (503) — x")
    page = configured.get(JOURNAL).text
    counts = re.search(r'id="journal-counts">(.*?)</p>', page, re.S).group(1)
    assert "Звонков: 5" in counts and "отправлен: 3" in counts and "ошибка: 2" in counts
    assert "не передан: 0" in counts
    hidden = configured.get(JOURNAL + "?state=skipped").text
    assert call_ids(hidden) == [] and "Под фильтр не попал ни один звонок, а всего в журнале 5" in hidden
    empty_day = configured.get(JOURNAL + "?date=2020-01-01").text
    assert "всего в журнале 5" in empty_day and "Сбросить фильтр" in empty_day


def test_pages_go_back_in_time_without_losing_or_repeating_a_call(configured, app):
    start = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)
    add_rows(app, 130, start=start)
    add_rows(app, 120, start=start, state="failed")  # the same start times: the id breaks ties
    seen, url = [], JOURNAL
    while url:
        page = configured.get(url).text
        seen += call_ids(page)
        found = re.search(r'<a href="([^"]+)" id="next-page">', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 250 and len(set(seen)) == 250
    failed_only, url = [], JOURNAL + "?state=failed"
    while url:
        page = configured.get(url).text
        failed_only += call_ids(page)
        found = re.search(r'<a href="([^"]+)" id="next-page">', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(failed_only) == 120 and all("-failed-" in c for c in failed_only)
    assert configured.get(JOURNAL + "?after=garbage").status_code == 200
    assert configured.get(JOURNAL + "?after=99999999999.1~999999999999999999999").status_code == 200


def test_retry_all_errors_sends_every_failed_call_again(configured, pbx, rq_worker, megaplan_sandbox, app):
    megaplan_sandbox.state.fail_next(20, status=422, path_prefix="/api/v3/callInfo/history")
    calls = [pbx.new_call(phone=f"7903555000{n}") for n in range(3)]
    for call in calls:
        call.history(status="Success", user="ivanov")
    rq_worker()  # Megaplan refuses them: the batch, then each alone
    assert 'id="retry-failed"' in configured.get(JOURNAL).text
    megaplan_sandbox.state._faults.clear()  # Megaplan takes them now
    response = post_form(configured, JOURNAL + "retry-failed", {}, page=JOURNAL)
    assert response.status_code == 302
    assert "Снова поставлено в очередь звонков: 3" in configured.get(JOURNAL).text
    rq_worker()
    with app.app_context():
        assert set(db.session.execute(sa.select(OutboxEntry.state)).scalars()) == {"sent"}
    assert len(megaplan_sandbox.state.calls) == 3
    assert 'id="retry-failed"' not in configured.get(JOURNAL).text


def test_csv_export_has_the_filtered_rows_in_local_time_and_no_formulas(configured, app):
    start = datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc)
    add_rows(app, 2, start=start)
    add_rows(app, 1, start=start, state="failed", last_error="=HYPERLINK(\"http://x\") — raw")
    response = configured.get(JOURNAL + "export.csv?state=failed")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows[0][:4] == ["Начало", "Направление", "Виртуальный номер", "Телефон"]
    (row,) = rows[1:]
    assert row[0] == "02.03.2026 01:30:00" and row[3] == "+7 (916) 000-00-00" and row[7] == "ошибка"
    assert row[9] == "'=HYPERLINK(\"http://x\")" and row[10] == "raw"
    assert len(list(csv.reader(io.StringIO(configured.get(JOURNAL + "export.csv").get_data(as_text=True)),
                               delimiter=";"))) == 4


def test_the_journals_queries_use_indexes_on_100000_rows(configured, app):
    """The plan, not the clock: no full scan of the outbox for any query the page makes."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO megaplan_outbox (kind, source, account_id, call_id, direction, client_phone, "
                    "status, started_at, record, state, attempts, created_at, updated_at) "
                    "SELECT 'call', 'push', CASE WHEN n % 10 = 0 THEN 'demo' ELSE 'acct-' || (n % 97) END, "
                    "'C' || n, 'in', '7916' || lpad((n % 9999999)::text, 7, '0'), 'answered', "
                    ":start + n * interval '1 minute', '{}', CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'sent' END, "
                    "1, :start, :start FROM generate_series(1, 100000) AS n"), {"start": start})
                conn.execute(sa.text("ANALYZE megaplan_outbox"))
        else:
            add_rows(app, 10_000, start=start)
            for k in range(9):
                add_rows(app, 10_000, start=start, account=f"acct-{k}")
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
    statements = []

    def seen(_conn, _cursor, statement, parameters, _context, _many):
        if "megaplan_outbox" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for url in (JOURNAL, JOURNAL + "?state=failed", JOURNAL + "?date=2026-01-20",
                    JOURNAL + "?state=sent&direction=in&date=2026-02-01"):
            page = configured.get(url)
            assert page.status_code == 200
            found = re.search(r'<a href="([^"]+)" id="next-page">', page.text)
            if found:
                assert configured.get(found.group(1).replace("&amp;", "&")).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) >= 8
    with engine.connect() as conn:
        for statement, parameters in statements:
            if engine.dialect.name == "postgresql":
                plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
                assert "Seq Scan on megaplan_outbox" not in plan, (statement, plan)
            else:
                plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                          parameters))
                assert re.search(r"SCAN megaplan_outbox(?! USING)", plan) is None, (statement, plan)


def test_counts_stop_at_the_cap_so_a_huge_journal_costs_what_a_small_one_does(configured, app, monkeypatch):
    from megaplan_plugin.web import journal
    monkeypatch.setattr(journal, "COUNT_CAP", 3)
    add_rows(app, 5, start=datetime.now(timezone.utc) - timedelta(hours=1))
    counts = re.search(r'id="journal-counts">(.*?)</p>', configured.get(JOURNAL).text, re.S).group(1)
    assert "Звонков: больше 3" in counts and "отправлен: больше 3" in counts and "ошибка: 0" in counts


def test_a_call_stored_at_the_calendars_edge_still_renders_everywhere(configured, app):
    """A row stored before the door refused such times (or by another host) must not break
    the journal, its CSV or the status panel: shown in UTC."""
    add_rows(app, 1, start=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
    add_rows(app, 1, start=datetime(1, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    for url in (JOURNAL, JOURNAL + "?state=pending", JOURNAL + "export.csv", "/plugins/megaplan/",
                "/plugins/megaplan/status.json"):
        response = configured.get(url)
        assert response.status_code == 200, url
    assert "31.12.9999 23:59:59 UTC" in configured.get(JOURNAL).text
