"""What a job did to its outbox row, in words the journal shows («почему звонок не в Мегаплан?»)."""
from __future__ import annotations

from datetime import timedelta

from megaplan_plugin.delivery.queues import SYNC_RETRY_INTERVALS
from megaplan_plugin.megaplan import MegaplanAuthError, MegaplanError, MegaplanTransientError
from megaplan_plugin.models import OutboxEntry, utcnow

STATUS_WORDS = {
    400: "Мегаплан отклонил запрос", 401: "Мегаплан не принял токен", 403: "нет прав в Мегаплане",
    404: "не найдено в Мегаплане", 409: "конфликт в Мегаплане", 422: "Мегаплан отклонил данные",
    429: "слишком много запросов к Мегаплану", 500: "внутренняя ошибка Мегаплана",
    502: "Мегаплан недоступен (шлюз)", 503: "Мегаплан временно недоступен",
    504: "Мегаплан не ответил вовремя",
}


def describe(exc: BaseException) -> str:
    """A Russian sentence for the journal; Megaplan's own text follows after a dash."""
    if isinstance(exc, MegaplanAuthError):
        return f"неверный логин или пароль Мегаплана — {exc.message}"
    if isinstance(exc, MegaplanError):
        if exc.status in STATUS_WORDS:
            return f"{STATUS_WORDS[exc.status]} ({exc.status}) — {exc.message}"
        if isinstance(exc, MegaplanTransientError):
            return f"Мегаплан не отвечает — {exc.message}"
        return f"ошибка Мегаплана — {exc}"
    return f"внутренняя ошибка интеграции: {type(exc).__name__}"


MAX_RETRY_AFTER = 3600  # a Retry-After beyond an hour is a misconfigured server, not advice


def next_try(attempts: int, not_before: float | None = None) -> int | None:
    """Seconds until a call that failed ``attempts`` times is tried again, or None when its
    schedule (``queues.SYNC_RETRY_INTERVALS``) is spent. ``not_before``: Megaplan's
    ``Retry-After`` (429/503), which stretches this attempt's interval."""
    if attempts > len(SYNC_RETRY_INTERVALS):
        return None
    asked = int(min(not_before or 0, MAX_RETRY_AFTER) + 0.999)
    return max(SYNC_RETRY_INTERVALS[attempts - 1], asked)


def record(row: OutboxEntry, state: str, *, reason: str | None = None, error: str | None = None,
           retry_in: int | None = None) -> str:
    """Set the row's outcome; the writer's commit of this call follows."""
    row.state, row.reason = state, reason
    row.next_retry_at = utcnow() + timedelta(seconds=retry_in) if retry_in is not None else None
    if error is not None or state == OutboxEntry.SENT:
        row.last_error = error
    return state
