"""How the sandbox answers where the Megaplan reference says UNCONFIRMED (in one place)."""

# callRoute employees are Employee objects, and Megaplan's schema gives Employee no internal
# number: the sandbox sends none (None), so the plugin's fallback to callUserConfig is the
# path the suite exercises. A name here makes the sandbox add one under that name.
ROUTE_INTERNAL_NUMBER_FIELD = None
# A wrong password is an OAuth `invalid_grant` with HTTP 400, like a used refresh token.
BAD_PASSWORD_STATUS = 400
