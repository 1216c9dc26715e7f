"""Delivery: how work reaches Megaplan exactly once, whatever fails on the way.

The outbox (``outbox``: finished calls stored before anything is queued, and the sweep), the
queues, job ids and wake-ups (``queues``), one writer per account (``writer``) running the
sync unit (``sync_unit``), a durable intent before every create (``intents``), popup jobs
(``jobs``), how an outcome is worded (``outcomes``), the workers (``worker``), the periodic
work (``periodic``, ``reconcile``) and the embedded mode (``embedded``). What a call becomes
in Megaplan is decided in ``megaplan_plugin.calls``.
"""
