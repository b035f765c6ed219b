"""The statuses of a handover to sales (`db.models.CrmHandover.status`) and the sales
feedback that sets them.

A lead's handover is `open` from its MQL cycle's start; feedback moves it on (with the
built-in CRM this row is the CRM record), a reassignment closes it as `reassigned` for
the new owner's row, and erasure marks it `erased`. A StrEnum equals its string, so the
column stays a plain string: the values here are the ones stored.
"""

from __future__ import annotations

from enum import StrEnum

from journeys.lifecycle import FeedbackOutcome


class HandoverStatus(StrEnum):
    """Where one handover stands."""

    OPEN = "open"
    REASSIGNED = "reassigned"  # routed to another rep: a new row carries the cycle on
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    QUALIFIED = "qualified"
    WON = "won"
    LOST = "lost"
    ERASED = "erased"  # the lead was erased


# What the handover of the current MQL cycle says after each kind of feedback.
STATUS_AFTER_FEEDBACK: dict[FeedbackOutcome, HandoverStatus] = {
    FeedbackOutcome.ACCEPT: HandoverStatus.ACCEPTED,
    FeedbackOutcome.REJECT: HandoverStatus.REJECTED,
    FeedbackOutcome.QUALIFY: HandoverStatus.QUALIFIED,
    FeedbackOutcome.WON: HandoverStatus.WON,
    FeedbackOutcome.LOST: HandoverStatus.LOST,
}
