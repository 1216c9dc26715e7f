"""Delivery: how work reaches Megaplan exactly once, whatever fails on the way.

It owns the one outbox table's writes (``outbox``), the RQ queues, job ids and retry policy
(``queues``), single-flight locks (``locks``), the job functions (``jobs``), how a job's
outcome is recorded (``outcomes``), the workers (``worker``), the periodic work (``cron``:
the outbox sweep and reconciliation with the PBX history, ``reconcile``) and the embedded
mode that runs all of it in threads of one process (``embedded``). What a call becomes in
Megaplan is not decided here: jobs call ``megaplan_plugin.sync`` for that.
"""
