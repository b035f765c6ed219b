"""Send windows: the next moment marketing email may go out to a lead (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from journeys.dsl import SendWindow


def lead_zone(timezone: str | None, window: SendWindow) -> ZoneInfo:
    """The lead's timezone, or the window's default when unknown or invalid."""
    for name in (timezone, window.default_timezone, "UTC"):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_window_start(now: datetime, timezone: str | None, window: SendWindow) -> datetime:
    """`now` if it lies inside the window, else the window's next opening (in UTC)."""
    zone = lead_zone(timezone, window)
    local = now.astimezone(zone)
    for day in range(8):
        date = (local + timedelta(days=day)).date()
        if date.weekday() not in window.weekdays:
            continue
        opens = datetime(date.year, date.month, date.day, window.start_hour, tzinfo=zone)
        closes = opens + timedelta(hours=window.end_hour - window.start_hour)
        if local < opens:
            return opens.astimezone(UTC)
        if local < closes:
            return now.astimezone(UTC)
    raise AssertionError("a window with at least one weekday opens within 8 days")
