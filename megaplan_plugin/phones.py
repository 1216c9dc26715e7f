"""Phone numbers, read one way everywhere: the plugin, the Megaplan client, the stub cabinet's
PBX and the Megaplan sandbox all use this module (on ``phonenumbers``), never their own rules.

``8 916 123-45-67``, ``+7 (916) 123-45-67``, ``9161234567`` and the PBX's ``79161234567`` are
one number. Russia is the default region because the cabinet is MegaFon's. Three forms:

* :func:`normalize`: digits of the E.164 form (``79161234567``), strict: what a user types;
* :func:`digits`: the same, best effort: short internal numbers and service codes stay digits;
* :func:`national`: the national significant number (``9161234567``), the client index's key;
* :func:`display`: what a person reads, ``+7 (916) 123-45-67``.
"""
from __future__ import annotations

import functools

import phonenumbers

DEFAULT_REGION = "RU"
MAX_LENGTH = 32


class InvalidPhone(ValueError):
    pass


def _parse(value) -> phonenumbers.PhoneNumber | None:
    text = str(value or "").strip()
    if not text or len(text) > MAX_LENGTH:
        return None
    only_digits = "".join(ch for ch in text if ch.isdigit())
    if not only_digits:
        return None
    # The PBX sends 7XXXXXXXXXX without "+"; phonenumbers would read it as a national number.
    if not text.startswith("+") and len(only_digits) == 11 and only_digits[0] == "7":
        text = "+" + only_digits
    try:
        return phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None


def normalize(value: str | None) -> str:
    if not str(value or "").strip():
        raise InvalidPhone("Укажите номер телефона")
    number = _parse(value)
    if number is None or not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"Неверный номер телефона: {value}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def digits(value) -> str:
    """E.164 digits when ``value`` reads as a phone number, else just its digits."""
    try:
        return normalize(value)
    except InvalidPhone:
        return "".join(ch for ch in str(value or "") if ch.isdigit())


def national(value) -> str | None:
    number = _parse(value)
    return str(number.national_number) if number is not None else None


def display(value) -> str:
    """``+7 (916) 123-45-67`` for a Russian number, the international form for others, and the
    value as it came when it is not a phone number at all (an internal number, «anonymous»)."""
    return _display_text(value) if isinstance(value, str) else _display(value)


# A pure function of the text, asked by every journal row and every recording fetch.
_display_text = functools.lru_cache(maxsize=4096)(lambda value: _display(value))


def _display(value) -> str:
    number = _parse(value)
    if number is None or not phonenumbers.is_possible_number(number):
        return str(value or "")
    if number.country_code == 7:
        # Russia's national format is «8 (916) 123-45-67»: the same groups after +7.
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return "+7 " + text[1:].lstrip() if text.startswith("8") else \
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
