"""Every point the reference marks UNCONFIRMED, decided here and only here.

Each constant says what we assume and why; change it here when a live account says otherwise.
"""
from __future__ import annotations

# Megaplan's own docs show numbers as 79991231212 (no "+"); that is what we send in CallInfo
# and in searches.
def phone_for_megaplan(digits: str) -> str:
    return digits


# Failed outgoing calls: RAML's type enum has "fail"; its exact meaning is not documented.
FAILED_OUTGOING_CALL_TYPE = "fail"

# callRoute returns employees "with their data"; where the internal number sits is not
# documented. We read an `internalNumber` attribute of each employee, then fall back to the
# account's CallUserConfig list.
CALL_ROUTE_INTERNAL_NUMBER_FIELD = "internalNumber"

# Search by phone: contractorCompany/search "by name or contacts" returns both subtypes.
CONTRACTOR_SEARCH_PATH = "/api/v3/contractorCompany/search"

# Access tokens live 48 h; refresh this long before expiry so a job never starts with a
# token that dies mid-request.
REFRESH_MARGIN_SECONDS = 300

# The only sample shows phones in contactInfo as "+7…"; we store new clients' numbers so.
def contact_phone_value(digits: str) -> str:
    return "+" + digits
