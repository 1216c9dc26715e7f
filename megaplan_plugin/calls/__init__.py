"""What a call becomes in Megaplan.

The popup and history fields of a ``CallInfo`` (``sync``), the client behind a number
(``contractors``, the local ``client_index``), who owns a call (``employees``, ``mapping``),
whom to ring (``routing``, from local data only), the callback todos that close themselves
(``callbacks``), the one rule of which calls are for Megaplan (``rules``), and a Megaplan
client per credential (``connection``). Nothing here commits or decides when work runs:
``delivery`` jobs and ``web`` views do.
"""
