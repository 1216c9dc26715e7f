"""Phone numbers, normalised once: digits of the E.164 form, ``79161234567``.

``8 916 123-45-67``, ``+7 (916) 123-45-67`` and ``79161234567`` are one number; Russia is the
default region because the cabinet is MegaFon's.
"""
from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"


class InvalidPhone(ValueError):
    pass


def normalize(value: str | None) -> str:
    text = (value or "").strip()
    if not text or len(text) > 32:
        raise InvalidPhone("Укажите номер телефона")
    digits = "".join(ch for ch in text if ch.isdigit())
    # The PBX sends 7XXXXXXXXXX without "+"; phonenumbers would read it as a national number.
    if not text.startswith("+") and len(digits) == 11 and digits[0] == "7":
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"Неверный номер телефона: {value}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"Неверный номер телефона: {value}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
