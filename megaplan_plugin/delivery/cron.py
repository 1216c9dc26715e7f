"""The periodic work: the outbox sweep, reconciliation with the PBX history, the client index.

:func:`schedule` is the one list; ``rq cron megaplan_plugin.delivery.cron_config`` registers
it with RQ's cron scheduler in production, the embedded mode's cron thread (``embedded.py``)
with its own. Every job is idempotent and guards against overlapping runs, so two cron
processes do no harm.
"""
from __future__ import annotations

import os

from megaplan_plugin.delivery import periodic
from megaplan_plugin.delivery.queues import SYNC_QUEUE
from megaplan_plugin.delivery.reconcile import EVERY_SECONDS as RECONCILE_EVERY_SECONDS

INDEX_EVERY_SECONDS = 3600


def sweep_every_seconds() -> int:
    """How often every account with waiting calls gets its writer woken (default a minute;
    ``MEGAPLAN_SWEEP_SECONDS`` for fault runs that cannot wait)."""
    return max(1, int(os.environ.get("MEGAPLAN_SWEEP_SECONDS") or 60))


def schedule() -> list[dict]:
    common = dict(queue_name=SYNC_QUEUE, result_ttl=600, failure_ttl=24 * 3600)
    return [dict(func=periodic.sweep, interval=sweep_every_seconds(), **common),
            dict(func=periodic.reconcile, interval=RECONCILE_EVERY_SECONDS, **common),
            dict(func=periodic.index_all, interval=INDEX_EVERY_SECONDS, **common)]
