"""What a job did to its outbox row, in words the journal shows («почему звонок не в Мегаплан?»)."""
from __future__ import annotations

from datetime import timedelta

from rq import get_current_job

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


def will_retry(not_before: float | None = None) -> tuple[bool, int | None]:
    """Whether RQ will run the current job again after it raises, and in how many seconds.

    ``not_before``: Megaplan's ``Retry-After`` (429/503). When it asks for longer than the
    job's own schedule, this attempt's interval is stretched to it: RQ schedules the retry in
    the same process right after the job raises, from the job's ``retry_intervals``.
    """
    job = get_current_job()
    if job is None or not job.retries_left:
        return False, None
    interval = job.get_retry_interval()
    if not_before and not_before > interval:
        intervals = list(job.retry_intervals or [0])
        index = max(len(intervals) - job.retries_left, 0)
        while len(intervals) <= index:
            intervals.append(intervals[-1])
        intervals[index] = interval = int(min(not_before, MAX_RETRY_AFTER) + 0.999)
        job.retry_intervals = intervals
    return True, interval


def record(row: OutboxEntry, state: str, *, reason: str | None = None, error: str | None = None,
           retry_in: int | None = None) -> str:
    """Set the row's outcome; the job's one commit follows."""
    row.state, row.reason = state, reason
    row.next_retry_at = utcnow() + timedelta(seconds=retry_in) if retry_in is not None else None
    if error is not None or state == OutboxEntry.SENT:
        row.last_error = error
    return state
