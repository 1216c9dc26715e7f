"""The plugin's faces in the cabinet and towards Megaplan's telephony app.

The settings page (``settings``, ``settings_store``, ``forms``), the sync journal
(``journal``), the status panel and its JSON (``status``), the one-time secret (``one_time``),
the JSON API for click-to-call and «Завершить» (``telephony_api``, ``api_errors``), and the one
place that makes outside input safe (``inputs``). Nothing else in the plugin imports ``web``.
"""
from flask import current_app
from redis.exceptions import RedisError

REDIS_DOWN = "Очередь задач интеграции (Redis) сейчас недоступна, попробуйте через минуту."


def queue_answers() -> bool:
    """Whether the plugin's queue (Redis) answers now: asked before a button changes anything
    that only means something once queued, and shown on the status panel."""
    try:
        current_app.extensions["megaplan"].redis.ping()
    except RedisError:
        return False
    return True


def not_kept(response):
    """Pages of an account (its calls, its settings, the one-time secret) stay in no browser's
    or proxy's cache: a shared computer, the back button after logout."""
    response.headers["Cache-Control"] = "no-store"
    return response


def csv_cell(value: str) -> str:
    """A CSV cell for Excel: text from outside (names, Megaplan's messages) must not run as a
    spreadsheet formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def split_error(text: str | None) -> tuple[str, str]:
    """«Мегаплан временно недоступен (503) — Service …»: the Russian part, Megaplan's own text
    (shown folded under it)."""
    if not text:
        return "", ""
    words, _, raw = text.partition(" — ")
    return words, raw
