"""Outside input made safe for the plugin's web faces (settings forms, journal, Megaplan API).

Whatever a browser, a script or Megaplan sends is checked here before it reaches a query:
PostgreSQL text cannot hold NUL, its ``integer`` ends at 2^31-1, the calendar ends at
9999-12-31, and a lone surrogate cannot be encoded at all. A value that fails a check is a
client's mistake with a Russian message, never a 500.

Plain functions raise :class:`InvalidInput`; :class:`Printable` is the same check as a WTForms
validator, so a form shows the message beside its field.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from wtforms.validators import ValidationError

# PostgreSQL ``integer`` (SERIAL ids of the plugin's tables).
DB_INT_MIN, DB_INT_MAX = 1, 2**31 - 1
# Calls filtered in the journal: wide enough for any real call, far from the calendar's edges.
JOURNAL_DAY_MIN, JOURNAL_DAY_MAX = date(2000, 1, 1), date(2100, 12, 31)
# Unicode categories refused in text: control characters (NUL, ESC, DEL, C1 …) and surrogates.
_REFUSED_CATEGORIES = {"Cc", "Cs"}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidInput(ValueError):
    """A value from outside that the plugin will not use; ``message`` is for the user (Russian)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def is_printable(value: str) -> bool:
    """No control characters (NUL included) and no lone surrogates."""
    return not any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value)


def text(value, *, title: str, max_length: int, allow_int: bool = False) -> str:
    """A short printable string (stripped); numbers accepted as text when ``allow_int``.

    ``title`` names the field in the message. An empty result is returned as "" for the caller
    to decide whether it is required.
    """
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{title}: ожидается строка")
    if len(value) > max_length:
        raise InvalidInput(f"{title}: не длиннее {max_length} символов")
    if not is_printable(value):
        raise InvalidInput(f"{title}: недопустимые символы (управляющие символы не принимаются)")
    return value.strip()


def db_int(value, *, low: int = DB_INT_MIN, high: int = DB_INT_MAX) -> int | None:
    """An integer id a database column can hold, or None (the caller answers 404)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
            return None
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def day(value: str, *, low: date = JOURNAL_DAY_MIN, high: date = JOURNAL_DAY_MAX) -> date | None:
    """A calendar day ``ГГГГ-ММ-ДД`` within ``low``..``high``; "" is None (no filter)."""
    value = (value or "").strip()
    if not value:
        return None
    if not _DAY.fullmatch(value) or not value.isascii():
        raise InvalidInput("Дата не распознана: укажите её в формате ГГГГ-ММ-ДД")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(f"Такой даты нет в календаре: {value}") from None
    if not low <= parsed <= high:
        raise InvalidInput(f"Дата должна быть между {low:%d.%m.%Y} и {high:%d.%m.%Y}")
    return parsed


class Printable:
    """WTForms validator: no NUL, control characters or lone surrogates in the field."""

    def __init__(self, message: str = "Недопустимые символы: уберите управляющие символы"):
        self.message = message

    def __call__(self, form, field) -> None:
        values = field.data if isinstance(field.data, (list, tuple)) else [field.data]
        if any(isinstance(v, str) and not is_printable(v) for v in values):
            raise ValidationError(self.message)
