"""Bounce and complaint rates per send source (issue 16): pure over rows.

A *send source* is what sent a message: a journey (outbox `workflow_id`
`journey:<name>:<lead>`) or a broadcast (`broadcast:<id>`); internal mail (notifications
to reps, double opt-in confirmations) is no source and isn't counted. Rates are per
message sent: a message counts once as bounced (permanently), soft-bounced (transiently
only) or complained about, however many reports came for it.

Gmail asks bulk senders to keep the spam complaint rate below 0.3 % (and ideally below
0.1 %); a source at or above `COMPLAINT_RATE_LIMIT` carries a warning, and so does one
whose permanent bounces pass `BOUNCE_RATE_LIMIT` (a list that needs cleaning).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

# Gmail's sender guidelines: a spam rate at or above 0.3 % gets mail rejected or junked.
COMPLAINT_RATE_LIMIT = 0.003
# A common ceiling for hard bounces (ESPs suspend senders well above it).
BOUNCE_RATE_LIMIT = 0.02


class SendSourceKind(StrEnum):
    """What can send marketing email."""

    JOURNEY = "journey"
    BROADCAST = "broadcast"


@dataclass(frozen=True)
class SendSource:
    """What sent a message: a journey by its name, a broadcast by its id."""

    kind: SendSourceKind
    name: str


def send_source(workflow_id: str) -> SendSource | None:
    """The source an outbox row's `workflow_id` names, or None (internal mail)."""
    kind, _, rest = workflow_id.partition(":")
    name = rest.split(":", 1)[0]
    if not name or kind not in {k.value for k in SendSourceKind}:
        return None
    return SendSource(SendSourceKind(kind), name)


class FeedbackKind(StrEnum):
    PERMANENT_BOUNCE = "permanent_bounce"
    TRANSIENT_BOUNCE = "transient_bounce"
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class Sent:
    """A message that went out (outbox status sent or, later, bounced)."""

    outbox_id: int
    workflow_id: str


@dataclass(frozen=True)
class Feedback:
    """A report about a sent message (a stored inbound row that named it)."""

    outbox_id: int
    kind: FeedbackKind


class SourceRates(BaseModel):
    """`GET /v1/analytics/deliverability`: one send source's figures."""

    kind: SendSourceKind
    name: str
    sent: int
    bounced: int = Field(description="Messages that bounced permanently")
    soft_bounced: int = Field(description="Messages that bounced only transiently")
    complained: int = Field(description="Messages marked as spam")
    bounce_rate: float | None
    soft_bounce_rate: float | None
    complaint_rate: float | None
    warnings: list[str] = []


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 5) if whole else None


def deliverability_rates(sent: Iterable[Sent], feedback: Iterable[Feedback]) -> list[SourceRates]:
    """Per source (journeys, then broadcasts, by name): sent, bounced, soft-bounced and
    complained messages, their rates and the warnings they call for."""
    source_of: dict[int, SendSource] = {}
    counted: dict[SendSource, int] = {}
    for message in sent:
        source = send_source(message.workflow_id)
        if source is None:
            continue
        source_of[message.outbox_id] = source
        counted[source] = counted.get(source, 0) + 1
    kinds: dict[int, set[FeedbackKind]] = {}
    for report in feedback:
        if report.outbox_id in source_of:
            kinds.setdefault(report.outbox_id, set()).add(report.kind)
    tallies: dict[SendSource, dict[str, int]] = {
        s: {"bounced": 0, "soft": 0, "complained": 0} for s in counted
    }
    for outbox_id, found in kinds.items():
        tally = tallies[source_of[outbox_id]]
        if FeedbackKind.PERMANENT_BOUNCE in found:
            tally["bounced"] += 1
        elif FeedbackKind.TRANSIENT_BOUNCE in found:
            tally["soft"] += 1
        if FeedbackKind.COMPLAINT in found:
            tally["complained"] += 1
    order = list(SendSourceKind)
    ranked = sorted(counted, key=lambda s: (order.index(s.kind), s.name))
    return [_figures(source, counted[source], tallies[source]) for source in ranked]


def _figures(source: SendSource, sent: int, tally: dict[str, int]) -> SourceRates:
    complaint_rate = _rate(tally["complained"], sent)
    bounce_rate = _rate(tally["bounced"], sent)
    warnings = []
    if complaint_rate is not None and complaint_rate >= COMPLAINT_RATE_LIMIT:
        warnings.append(
            f"complaint rate {complaint_rate:.2%} is at or above Gmail's "
            f"{COMPLAINT_RATE_LIMIT:.1%}: mail from this sender may be rejected or junked"
        )
    if bounce_rate is not None and bounce_rate >= BOUNCE_RATE_LIMIT:
        warnings.append(
            f"bounce rate {bounce_rate:.2%} is at or above {BOUNCE_RATE_LIMIT:.0%}: "
            "clean the list (addresses that bounce are suppressed already)"
        )
    return SourceRates(
        kind=source.kind,
        name=source.name,
        sent=sent,
        bounced=tally["bounced"],
        soft_bounced=tally["soft"],
        complained=tally["complained"],
        bounce_rate=bounce_rate,
        soft_bounce_rate=_rate(tally["soft"], sent),
        complaint_rate=complaint_rate,
        warnings=warnings,
    )
