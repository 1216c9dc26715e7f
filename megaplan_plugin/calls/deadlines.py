"""When a missed call must be called back: «Перезвонить в течение» in the account's working hours.

The clock runs only in working time, in the account's time zone: a call missed at night, on a
day off or after hours starts its clock at the next working period. A fixed period (15 min to
4 h) is working time, carried over into the next working period when today's ends first: missed
at 17:55 with working hours 10:00-18:00 and 30 min gives 5 min today and 25 min tomorrow, due
10:25. «до конца рабочего дня» is the end of the working period the clock starts in. «24 ч» is
a calendar day from the moment the clock starts (a customer's "within a day" is not three
working days). With no working day ticked the clock runs around the clock. Pure functions of their arguments: no database, no clock of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from megaplan_plugin.web import timezones

END_OF_DAY = "workday"
# «Перезвонить в течение»: the stored value and what the settings page says.
WITHIN = [("15", "15 минут"), ("30", "30 минут"), ("60", "1 час"), ("240", "4 часа"),
          (END_OF_DAY, "до конца рабочего дня"), ("1440", "24 часа")]
DEFAULT_WITHIN = "30"
WEEKDAYS = [(0, "пн"), (1, "вт"), (2, "ср"), (3, "чт"), (4, "пт"), (5, "сб"), (6, "вс")]
DEFAULT_DAYS = [0, 1, 2, 3, 4]
DEFAULT_START, DEFAULT_END = "09:00", "18:00"
CALENDAR_MINUTES = 1440  # the one period counted in calendar time


@dataclass(frozen=True)
class WorkingHours:
    zone: ZoneInfo | timezone
    days: frozenset[int]   # Monday = 0
    start: time
    end: time

    @classmethod
    def of(cls, zone, days, start: str | None, end: str | None) -> "WorkingHours":
        return cls(zone, frozenset(int(d) for d in (days if days is not None else DEFAULT_DAYS)),
                   parse_time(start or DEFAULT_START), parse_time(end or DEFAULT_END))

    def period(self, day) -> tuple[datetime, datetime] | None:
        """The working period of a local date, or None on a day off."""
        if day.weekday() not in self.days or self.end <= self.start:
            return None
        return (datetime.combine(day, self.start, self.zone), datetime.combine(day, self.end, self.zone))

    def within(self, moment: datetime) -> bool:
        """``moment`` falls in working time (always, with no working day ticked)."""
        if not self.days:
            return True
        local = moment.astimezone(self.zone)
        period = self.period(local.date())
        return period is not None and period[0] <= local < period[1]

    def clock_start(self, moment: datetime) -> tuple[datetime, datetime]:
        """Where the clock starts for ``moment`` and the end of that working period."""
        local = moment.astimezone(self.zone)
        for offset in range(8):
            period = self.period(local.date() + timedelta(days=offset))
            if period is None:
                continue
            begin, end = period
            if local < end:
                return max(local, begin), end
        raise ValueError("no working day in the week")


def hours_of(settings) -> WorkingHours:
    """An account's working hours (``settings``: its ``Settings``, or a row with those columns)."""
    return WorkingHours.of(timezones.zone(settings.time_zone), settings.work_days, settings.work_start, settings.work_end)


def parse_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def due_at(missed_at: datetime, within: str, hours: WorkingHours) -> datetime:
    """The deadline (UTC) of a call missed at ``missed_at`` (aware)."""
    if not hours.days or hours.end <= hours.start:
        # no working day ticked: the period runs around the clock from the miss
        minutes = CALENDAR_MINUTES if within == END_OF_DAY else int(within)
        return (missed_at + timedelta(minutes=minutes)).astimezone(timezone.utc)
    start, end = hours.clock_start(missed_at)
    if within == END_OF_DAY:
        return end.astimezone(timezone.utc)
    minutes = int(within)
    if minutes >= CALENDAR_MINUTES:
        return (start + timedelta(minutes=minutes)).astimezone(timezone.utc)
    left = timedelta(minutes=minutes)
    while start + left > end:
        left -= end - start
        start, end = hours.clock_start(end + timedelta(microseconds=1))
    return (start + left).astimezone(timezone.utc)
