"""Send windows: the next moment marketing email may go out to a lead (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from journeys import timezones
from journeys.dsl import SendWindow


def lead_zone(timezone: str | None, window: SendWindow, *, country: str | None = None) -> ZoneInfo:
    """The lead's timezone; when unknown or invalid, its country's (a country of one local
    time, `journeys.timezones`), else the window's default."""
    return timezones.lead_zone(timezone, country, window.default_timezone)


def next_window_start(
    now: datetime, timezone: str | None, window: SendWindow, *, country: str | None = None
) -> datetime:
    """`now` if it lies inside the window, else the window's next opening (in UTC)."""
    zone = lead_zone(timezone, window, country=country)
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
