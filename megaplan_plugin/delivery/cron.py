"""The periodic work, for RQ's cron scheduler: ``rq cron megaplan_plugin.delivery.cron``.

The same list drives the embedded mode's cron thread (``embedded.py``). Both jobs are
idempotent and guard against overlapping runs, so two cron processes do no harm.
"""
from __future__ import annotations

from rq import cron

from megaplan_plugin.delivery import periodic
from megaplan_plugin.delivery.queues import SYNC_QUEUE
from megaplan_plugin.delivery.reconcile import EVERY_SECONDS as RECONCILE_EVERY_SECONDS

SWEEP_EVERY_SECONDS = 60
INDEX_EVERY_SECONDS = 3600

SCHEDULE = [
    dict(func=periodic.sweep, queue_name=SYNC_QUEUE, interval=SWEEP_EVERY_SECONDS, result_ttl=600,
         failure_ttl=24 * 3600),
    dict(func=periodic.reconcile, queue_name=SYNC_QUEUE, interval=RECONCILE_EVERY_SECONDS,
         result_ttl=600, failure_ttl=24 * 3600),
    dict(func=periodic.index_all, queue_name=SYNC_QUEUE, interval=INDEX_EVERY_SECONDS,
         result_ttl=600, failure_ttl=24 * 3600),
]

for entry in SCHEDULE:
    cron.register(**entry)
