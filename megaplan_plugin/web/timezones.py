"""The account's time zone («Часовой пояс»): every time the plugin shows and every date filter
it applies are in it; stored times stay UTC. Russia's zones, Moscow first (the default)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from megaplan_plugin.models import aware

DEFAULT = "Europe/Moscow"
ZONES = [
    ("Europe/Kaliningrad", "Калининград (UTC+2)"),
    ("Europe/Moscow", "Москва (UTC+3)"),
    ("Europe/Samara", "Самара (UTC+4)"),
    ("Asia/Yekaterinburg", "Екатеринбург (UTC+5)"),
    ("Asia/Omsk", "Омск (UTC+6)"),
    ("Asia/Novosibirsk", "Новосибирск (UTC+7)"),
    ("Asia/Krasnoyarsk", "Красноярск (UTC+7)"),
    ("Asia/Irkutsk", "Иркутск (UTC+8)"),
    ("Asia/Yakutsk", "Якутск (UTC+9)"),
    ("Asia/Vladivostok", "Владивосток (UTC+10)"),
    ("Asia/Magadan", "Магадан (UTC+11)"),
    ("Asia/Kamchatka", "Петропавловск-Камчатский (UTC+12)"),
    ("UTC", "UTC"),
]
LABELS = dict(ZONES)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name if name in LABELS else DEFAULT)
    except ZoneInfoNotFoundError:  # no IANA database on the host and no tzdata package
        return ZoneInfo("UTC") if name == "UTC" else _fixed_moscow()


def _fixed_moscow():
    return timezone(timedelta(hours=3), "MSK")


def local(value: datetime | None, name: str | None, fmt: str = "%d.%m.%Y %H:%M:%S") -> str:
    """A stored (UTC, naive on SQLite) time as the account reads it."""
    if value is None:
        return ""
    try:
        return aware(value).astimezone(zone(name)).strftime(fmt)
    except OverflowError:  # stored before the door checked it: shown in UTC rather than not at all
        return aware(value).strftime(fmt) + " UTC"


def day_bounds(day: date, name: str | None) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the account's zone, in UTC for the query."""
    tz = zone(name)
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def today(name: str | None) -> date:
    return datetime.now(zone(name)).date()
