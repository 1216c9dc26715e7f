"""The counts behind the missed-calls report, kept by the hour as callbacks change.

Why: counting the rows themselves made the report page 8-12x slower with 100,000 missed calls
inside its 30 days than with 100 (bench/scale.py (g)): every figure read every row. Here each
figure is a sum over at most one row per hour (and per employee or per wait bucket), so the
page reads hours, not calls.

What the reader must hold:
* a tally changes only here, and only from ``calls/callbacks.py``, in the same transaction as
  the callback row it counts: a rolled-back call rolls its counts back with it, so the counts
  and the rows agree by construction (``tests/test_callback_tallies.py`` attacks it: random
  days with Megaplan failing and answers lost, then every figure against the rows);
* every count is kept at the hour (UTC) of the callback's first miss (``missed`` at the hour
  of each miss): the report's periods start at local midnight, a whole UTC hour in every
  zone the settings offer, so an hour never straddles a period;
* an increment is one atomic upsert (``n = n + delta``), so two writers could not lose one,
  though one writer per account never runs two at once;
* Alembic 0010 filled them from the rows that existed before.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from megaplan_plugin.models import CallbackTally, aware

# figures
MISSED, CALLBACKS, IN_TIME, LATE, CLIENT = "missed", "callbacks", "in_time", "late", "client"
ESCALATED_OPEN = "escalated"   # handed on and not closed yet
WAIT = "wait"                  # detail: the wait's bucket (seconds, its lower bound)
RUNG, CALLED_BACK, CALLED_BACK_IN_TIME = "rung", "back", "back_ok"  # detail: the employee
# Wait buckets: exact minutes for the first hour, then coarser (the report shows minutes).
_STEPS = [(3600, 60), (4 * 3600, 300), (24 * 3600, 900), (7 * 86400, 3600)]


def hour_of(moment: datetime) -> datetime:
    return aware(moment).astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def wait_bucket(seconds: int) -> int:
    """The lower bound (seconds) of the bucket a wait falls in."""
    for limit, step in _STEPS:
        if seconds < limit:
            return seconds // step * step
    return _STEPS[-1][0]


def add(session, account_id: str, moment: datetime, figure: str, detail: str = "", delta: int = 1) -> None:
    bind = session.get_bind()
    dialect_insert = postgresql_insert if bind.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(CallbackTally).values(account_id=account_id, hour=hour_of(moment), figure=figure,
                                                     detail=detail, n=delta)
    session.execute(statement.on_conflict_do_update(
        index_elements=["account_id", "hour", "figure", "detail"],
        set_={"n": CallbackTally.n + statement.excluded.n}))


def read(session, account_id: str, starts: list[datetime], until: datetime) -> dict:
    """{since: {figure: {detail: sum}}} over [since, until) for each of ``starts``, in one
    query: the hours are summed once per stretch between two starts, then added up."""
    starts = sorted(starts, reverse=True)  # the latest first
    stretch = case(*[(CallbackTally.hour >= since, n) for n, since in enumerate(starts)], else_=len(starts))
    sums: dict = defaultdict(lambda: defaultdict(dict))
    for figure, detail, part, total in session.execute(
            select(CallbackTally.figure, CallbackTally.detail, stretch, func.sum(CallbackTally.n)).where(
                CallbackTally.account_id == account_id, CallbackTally.hour >= starts[-1],
                CallbackTally.hour < until).group_by(CallbackTally.figure, CallbackTally.detail, stretch)):
        sums[part][figure][detail] = int(total)
    found = {}
    for n, since in enumerate(starts):  # a period is its own stretch and the later ones
        merged: dict = defaultdict(lambda: defaultdict(int))
        for part in range(n + 1):
            for figure, details in sums[part].items():
                for detail, total in details.items():
                    merged[figure][detail] += total
        found[since] = merged
    return found


def median_wait(waits: dict[str, int]) -> int | None:
    """The lower median of the waits, to its bucket."""
    total = sum(waits.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(waits, key=int):
        seen += waits[bucket]
        if seen > (total - 1) // 2:
            return int(bucket)
    return None
