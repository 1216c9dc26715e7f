"""How the sandbox answers where the Megaplan reference says UNCONFIRMED (in one place)."""

# callRoute employees carry their telephony internal number as `internalNumber`.
ROUTE_INTERNAL_NUMBER_FIELD = "internalNumber"
# A wrong password is an OAuth `invalid_grant` with HTTP 400, like a used refresh token.
BAD_PASSWORD_STATUS = 400
