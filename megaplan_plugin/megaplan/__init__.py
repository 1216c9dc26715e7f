"""Megaplan API v3 client (no Flask): ``MegaplanClient`` and what goes with it."""
from . import unconfirmed
from .auth import MemoryTokenStore, Tokens, TokenStore
from .client import (MegaplanClient, contact_phone, contractor_phones, datetime_value, link,
                     national_number, phone_digits)
from .domain import normalize_domain
from .errors import (InvalidDomain, MegaplanAuthError, MegaplanError, MegaplanPermanentError,
                     MegaplanTransientError)

__all__ = [
    "InvalidDomain", "MegaplanAuthError", "MegaplanClient", "MegaplanError", "MegaplanPermanentError",
    "MegaplanTransientError", "MemoryTokenStore", "TokenStore", "Tokens", "contact_phone",
    "contractor_phones", "datetime_value", "link", "national_number", "normalize_domain",
    "phone_digits", "unconfirmed",
]
