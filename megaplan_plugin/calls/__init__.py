"""What a call becomes in Megaplan.

Whose a call is, its popup, history and communication fields and the callback todos it
closes (``sync``), the client behind a number (``clients``: the local index, and the search
or create in Megaplan), Megaplan's employees and their internal numbers (``employees``), whom
to ring (``routing``, from local data only), the one rule of which calls are for Megaplan
(``rules``), and a Megaplan client per credential (``connection``). Nothing here commits or
decides when work runs: ``delivery`` jobs and ``web`` views do.
"""
