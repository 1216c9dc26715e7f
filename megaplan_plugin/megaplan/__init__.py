"""Megaplan API v3 client (no Flask): ``MegaplanClient`` and what goes with it."""
from . import unconfirmed
from .auth import MemoryTokenStore, Tokens, TokenStore
from .client import MegaplanClient
from .domain import normalize_domain
from .errors import (InvalidDomain, MegaplanAuthError, MegaplanError, MegaplanPermanentError,
                     MegaplanTransientError)
from .values import contact_phone, contractor_phones, datetime_value, entity_name, link

__all__ = [
    "InvalidDomain", "MegaplanAuthError", "MegaplanClient", "MegaplanError", "MegaplanPermanentError",
    "MegaplanTransientError", "MemoryTokenStore", "TokenStore", "Tokens", "contact_phone",
    "contractor_phones", "datetime_value", "entity_name", "link", "normalize_domain", "unconfirmed",
]
