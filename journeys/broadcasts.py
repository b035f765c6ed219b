"""Broadcasts (newsletters, announcements): one email to a whole audience — a segment, or
every lead subscribed to a topic — sent in batches at a throttled rate, optionally at a
local time of day, optionally with a subject A/B test first. The closed sets and the pure
rules; the workflow and the activities do the rest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field


def broadcast_workflow_id(broadcast_id: str) -> str:
    """The id of the broadcast's workflow, also in its outbox rows' `workflow_id`."""
    return f"broadcast:{broadcast_id}"


class BroadcastStatus(StrEnum):
    """Where a broadcast stands."""

    SCHEDULED = "scheduled"  # waiting for its start time
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    """Where one recipient of a broadcast stands."""

    PENDING = "pending"  # not yet tried (or due later, at its local time)
    SENT = "sent"
    SKIPPED = "skipped"  # checked at the moment of sending: see `SkipReason`
    DEFERRED = "deferred"  # the server said "try later" (4xx): tried again
    FAILED = "failed"  # still refused after the retries
    BOUNCED = "bounced"  # refused for good (5xx): the address is suppressed


class SkipReason(StrEnum):
    """Why a recipient got nothing, decided when its message was due."""

    NO_CONSENT = "no_consent"  # unsubscribed, never confirmed, bounced or complained
    TOPIC_UNSUBSCRIBED = "topic_unsubscribed"
    SUPPRESSED = "suppressed"  # the address is on the suppression list
    ERASED = "erased"
    FREQUENCY_CAP = "frequency_cap"


class AbMetric(StrEnum):
    """What makes a subject the winner: unique opens or unique clicks."""

    OPENS = "opens"
    CLICKS = "clicks"


class AbTestSpec(BaseModel):
    """Send `subjects` to a `sample_percent` sample, wait `wait`, send the winner to the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subjects: list[str] = Field(min_length=2, max_length=4)
    sample_percent: int = Field(default=10, ge=1, le=50)
    wait: timedelta = Field(default=timedelta(hours=4), ge=timedelta(0), le=timedelta(days=7))
    metric: AbMetric = AbMetric.OPENS


# Messages one batch activity sends at most (many recipients per activity, history small).
BATCH_SIZE = 500


def batch_size_for(rate_per_second: float | None) -> int:
    """Recipients per batch: about ten seconds' worth at the rate, within 10…BATCH_SIZE."""
    if rate_per_second is None:
        return BATCH_SIZE
    return max(10, min(BATCH_SIZE, int(rate_per_second * 10)))


def local_due_at(start: datetime, local_time: time | None, zone: ZoneInfo) -> datetime:
    """When a recipient's message is due: `start`, or with a local time of day, the first
    moment at or after `start` when it is `local_time` in the recipient's `zone`."""
    if local_time is None:
        return start
    local = start.astimezone(zone)
    due = datetime.combine(local.date(), local_time, tzinfo=zone)
    if due < local:
        due = datetime.combine(local.date() + timedelta(days=1), local_time, tzinfo=zone)
    return due.astimezone(start.tzinfo)


def sample_size(audience: int, percent: int, variants: int) -> int:
    """How many recipients get a variant: `percent` of the audience, at least one per
    variant when the audience allows, never the whole audience (someone gets the winner)."""
    wanted = max(variants, round(audience * percent / 100))
    return max(0, min(wanted, audience - 1))


def variant_of(position: int, sample: int, variants: int) -> int | None:
    """The variant of the recipient at `position` (snapshot order, shuffled): round-robin
    over the sample, None for the rest (they get the winner)."""
    return position % variants if position < sample else None


@dataclass(frozen=True)
class RecipientFacts:
    """What decides, at the moment of sending, whether a recipient gets the message."""

    erased: bool
    consent_confirmed: bool
    suppressed: bool
    topic_unsubscribed: bool
    capped: bool  # the frequency cap, or the lead's own lower frequency for the topic


def skip_reason(facts: RecipientFacts) -> SkipReason | None:
    """Why this recipient gets nothing now; None: send."""
    if facts.erased:
        return SkipReason.ERASED
    if facts.suppressed:
        return SkipReason.SUPPRESSED
    if not facts.consent_confirmed:
        return SkipReason.NO_CONSENT
    if facts.topic_unsubscribed:
        return SkipReason.TOPIC_UNSUBSCRIBED
    if facts.capped:
        return SkipReason.FREQUENCY_CAP
    return None


# A server's "try later" (4xx) is tried again after base * 2^(attempt-1), this many times.
MAX_ATTEMPTS = 6
MAX_RETRY_DELAY = timedelta(hours=1)


def retry_delay(attempts: int, base: timedelta) -> timedelta:
    """How long a deferred recipient waits after its `attempts`-th refusal."""
    return min(base * (2 ** max(0, attempts - 1)), MAX_RETRY_DELAY)
