"""Transient bounces and a lead's deliverability status (issue 16). Pure: the reports in,
a verdict out; `activities/inbound.py` reads the rows and acts.

A transient failure (`4.x.x`: mailbox full, greylisted, over quota) is no reason to give up
an address once — but an address that keeps failing hurts the sender's reputation like a
dead one. So transient bounces are counted per message (several reports about one message
are one failure) within a sliding window, and the address is suppressed as `bounced` once
`limit` messages failed within `window`. A report whose DSN `Action` is `delayed` is only
a warning (the relay still tries) and counts for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from journeys.consent import ConsentStatus


class SoftBouncePolicy(BaseModel):
    """Suppress an address after `limit` messages to it bounced transiently within
    `window` (`NURTURE_SOFT_BOUNCES`, e.g. `3/7d`)."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(default=3, ge=1)
    window: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class TransientBounce:
    """One stored transient bounce report: the message it is about, when it came, and the
    DSN's `Action` (`failed`, `delayed`, or empty when the report had no DSN)."""

    outbox_id: int | None
    at: datetime
    action: str = ""


def failed_messages(
    reports: Iterable[TransientBounce], now: datetime, policy: SoftBouncePolicy
) -> int:
    """How many distinct messages bounced transiently within the policy's window before
    `now` (a `delayed` warning is no failure)."""
    since = now - policy.window
    return len(
        {
            report.outbox_id if report.outbox_id is not None else ("report", report.at)
            for report in reports
            if since < report.at <= now and report.action.strip().lower() != "delayed"
        }
    )


def suppress_after_transient(
    reports: Iterable[TransientBounce], now: datetime, policy: SoftBouncePolicy
) -> bool:
    """Whether the address is to be suppressed now, given its transient bounce reports
    (the one just received included)."""
    return failed_messages(reports, now, policy) >= policy.limit


class DeliverabilityStatus(StrEnum):
    """Whether mail reaches a lead, as the lead view shows it."""

    ACTIVE = "active"
    SOFT_BOUNCING = "soft_bouncing"  # transient bounces within the window, not suppressed
    BOUNCED = "bounced"  # a permanent bounce, or too many transient ones
    COMPLAINED = "complained"  # marked as spam


def deliverability_status(
    consent_status: str, transient_failures_in_window: int
) -> DeliverabilityStatus:
    """The lead's deliverability status from its consent status (which a bounce or a
    complaint sets) and its recent transient failures."""
    if consent_status == ConsentStatus.COMPLAINED:
        return DeliverabilityStatus.COMPLAINED
    if consent_status == ConsentStatus.BOUNCED:
        return DeliverabilityStatus.BOUNCED
    if transient_failures_in_window > 0:
        return DeliverabilityStatus.SOFT_BOUNCING
    return DeliverabilityStatus.ACTIVE
