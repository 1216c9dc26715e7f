"""How the sandbox answers where the Megaplan reference says UNCONFIRMED (in one place)."""
import re

# callRoute employees carry their telephony internal number as `internalNumber`.
ROUTE_INTERNAL_NUMBER_FIELD = "internalNumber"
# A wrong password is an OAuth `invalid_grant` with HTTP 400, like a used refresh token.
BAD_PASSWORD_STATUS = 400


def phone_key(value: str) -> str:
    """Phone matching: digits, 8… and 10-digit Russian numbers read as 7…"""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 11 and digits.startswith("8"):
        return "7" + digits[1:]
    if len(digits) == 10:
        return "7" + digits
    return digits
