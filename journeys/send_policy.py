"""When a marketing email may go out: quiet hours and weekdays in the lead's timezone, and
a frequency cap across all journeys. Pure: the email activity asks `next_allowed_moment`
and defers the send (never drops it) when the answer is later than now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field


class SendPolicy(BaseModel):
    """Quiet hours (`quiet_from` to `quiet_until`, local hours; None: none), allowed weekdays
    (0 = Monday) and at most `cap` marketing emails per `cap_period` (None: no cap)."""

    model_config = ConfigDict(frozen=True)

    quiet_from: int | None = Field(default=21, ge=0, le=23)
    quiet_until: int | None = Field(default=8, ge=0, le=23)
    weekdays: frozenset[int] = frozenset(range(7))
    cap: int | None = Field(default=3, ge=1)
    cap_period: timedelta = timedelta(days=7)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _quiet(local: datetime, policy: SendPolicy) -> bool:
    start, end = policy.quiet_from, policy.quiet_until
    if start is None or end is None or start == end:
        return False
    hour = local.hour
    return (start <= hour or hour < end) if start > end else (start <= hour < end)


def in_window(moment: datetime, timezone: str | None, policy: SendPolicy) -> bool:
    """Whether `moment` is outside quiet hours on an allowed weekday, in the lead's zone."""
    local = moment.astimezone(_zone(timezone))
    return local.weekday() in policy.weekdays and not _quiet(local, policy)


def next_window(moment: datetime, timezone: str | None, policy: SendPolicy) -> datetime:
    """The first moment at or after `moment` inside the send window (hour steps, then the
    exact hour start)."""
    if in_window(moment, timezone, policy) or not policy.weekdays:
        return moment
    zone = _zone(timezone)
    local = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 8):
        local += timedelta(hours=1)
        if in_window(local, timezone, policy):
            return local.astimezone(moment.tzinfo)
    return moment  # pragma: no cover - a policy with allowed days always has an hour


def next_allowed_moment(
    now: datetime, timezone: str | None, sent: Sequence[datetime], policy: SendPolicy
) -> datetime:
    """The earliest moment from `now` on that respects both the window and the cap, given
    the moments marketing emails were sent to this lead (`sent`)."""
    moment = now
    for _ in range((policy.cap or 1) + 2):
        moment = next_window(moment, timezone, policy)
        if policy.cap is None:
            return moment
        recent = sorted(s for s in sent if moment - policy.cap_period < s <= moment)
        if len(recent) < policy.cap:
            return moment
        # Wait until enough of them age out of the period.
        moment = recent[len(recent) - policy.cap] + policy.cap_period + timedelta(seconds=1)
    return next_window(moment, timezone, policy)
