"""The operator's view of one account: is it connected, is it sending, what went wrong last.

Everything here is read from the plugin's own tables (one query per figure, each on an
index), so the settings page and ``status.json`` stay fast with a large outbox;
``check_connection`` is the only part that asks Megaplan, and only when the admin presses
«Проверить подключение».
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from megaplan_plugin import cabinet
from megaplan_plugin.calls import callback_figures, rules
from megaplan_plugin.models import Credential, MegaplanEmployee, OutboxEntry, Settings, aware, utcnow
from megaplan_plugin.web import timezones
from megaplan_plugin.web import queue_answers, split_error


def account_status(account_id: str) -> dict:
    db = cabinet.db()
    settings = db.session.get(Settings, account_id)
    credential = db.session.get(Credential, settings.credential_id) if settings and settings.credential_id else None
    calls = select(OutboxEntry).where(OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL)
    time_zone = settings.time_zone if settings else timezones.DEFAULT
    day_start, _ = timezones.day_bounds(timezones.today(time_zone), time_zone)  # the account's today
    today = dict(db.session.execute(
        select(OutboxEntry.state, func.count()).where(
            OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL,
            OutboxEntry.started_at >= day_start).group_by(OutboxEntry.state)).all())
    last_sent = db.session.execute(select(func.max(OutboxEntry.updated_at)).where(
        OutboxEntry.account_id == account_id, OutboxEntry.state == OutboxEntry.SENT)).scalar()
    last_error = db.session.execute(calls.where(OutboxEntry.last_error.is_not(None))
                                    .order_by(OutboxEntry.updated_at.desc()).limit(1)).scalar()
    oldest_waiting = db.session.execute(select(func.min(OutboxEntry.created_at)).where(
        OutboxEntry.account_id == account_id, OutboxEntry.kind == OutboxEntry.CALL,
        OutboxEntry.state == OutboxEntry.PENDING)).scalar()
    employees = db.session.execute(select(func.count()).select_from(MegaplanEmployee).where(
        MegaplanEmployee.credential_id == credential.id)).scalar() if credential else 0
    waiting_for = utcnow() - aware(oldest_waiting) if oldest_waiting else None
    missed_today = callback_figures.figures(db.session, account_id, None, *callback_figures.bounds(1, time_zone),
                                            utcnow(), with_employees=False)
    return {
        "active": rules.active(settings) and credential is not None,
        "megaplan": credential.base_url if credential else None,
        "megaplan_user": credential.megaplan_user_name if credential else None,
        "employees": employees,
        "token_expires_at": _iso(credential.token_expires_at if credential else None),
        "last_sent_at": _iso(last_sent),
        "last_error": split_error(last_error.last_error)[0] if last_error else None,
        "last_error_details": split_error(last_error.last_error)[1] if last_error else None,
        "last_error_at": _iso(last_error.updated_at if last_error else None),
        "today": {state: today.get(state, 0) for state in OutboxEntry.STATE_TITLES},
        "missed_today": {"missed": missed_today.missed, "in_time": missed_today.in_time, "late": missed_today.late,
                         "client": missed_today.client, "open": missed_today.open, "overdue": missed_today.overdue},
        "time_zone": time_zone,
        "oldest_waiting_seconds": int(waiting_for.total_seconds()) if waiting_for else None,
        "reconciled_at": _iso(settings.reconciled_at if settings else None),
        "reconcile_found": settings.reconcile_found if settings else None,
        "queue": None if queue_answers() else (
            "Очередь задач интеграции (Redis) недоступна: звонки сохраняются и уйдут в Мегаплан, "
            "когда она вернётся"),
    }


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat(timespec="seconds") if value else None


def waiting_words(seconds: int | None) -> str:
    if seconds is None:
        return "нет"
    return str(timedelta(seconds=seconds))


def check_connection(credential: Credential) -> list[tuple[bool, str]]:
    """Ask Megaplan what the panel cannot know: token, current user, employees, telephony."""
    from megaplan_plugin.calls.connection import client_for
    from megaplan_plugin.megaplan import MegaplanError
    client = client_for(credential, timeout=(3.05, 10))
    results = []
    try:
        me = client.current_user()
        results.append((True, f"Вход в Мегаплан выполнен: {me.get('name') or me.get('id')}"))
        employees = list(client.employees())
        results.append((bool(employees), f"Сотрудников в Мегаплан: {len(employees)}"))
        numbers = client.internal_numbers()
        results.append((bool(numbers), "Приложение телефонии настроено: внутренних номеров "
                                      f"{len(numbers)}" if numbers else
                        "В Мегаплан нет внутренних номеров телефонии: установите приложение "
                        "«Телефония МегаФон 2.0» и укажите номера сотрудников"))
    except MegaplanError as exc:
        from megaplan_plugin.delivery.outcomes import describe
        results.append((False, f"Мегаплан не ответил как ожидалось: {describe(exc)}"))
    return results
