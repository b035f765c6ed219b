"""Per-step journey statistics (sent, opened, clicked, converted) and A/B variant results.

A lead *converted* after an email when it became an MQL after that email was sent: the
outcome the nurture exists for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from journeys.dsl import JourneyDefinition, SendEmail
from reporting.link_clicks import LinkClicks


@dataclass(frozen=True)
class SentEmail:
    outbox_id: int
    lead_id: str
    step_id: str
    template: str
    sent_at: datetime


class StepStats(BaseModel):
    step_id: str
    sent: int
    opened: int
    clicked: int
    converted: int
    open_rate: float | None
    click_rate: float | None
    conversion_rate: float | None


class VariantStats(BaseModel):
    variant: str
    template: str
    sent: int
    clicked: int
    converted: int
    click_rate: float | None
    conversion_rate: float | None


class VariantTest(BaseModel):
    step_id: str
    variants: list[VariantStats]
    leader: str | None


class JourneyStats(BaseModel):
    """`GET /v1/analytics/journeys/{journey}`."""

    journey: str
    version: str
    steps: list[StepStats]
    ab_tests: list[VariantTest]
    # Clicks per link of the journey's emails (per template and URL), most clicked first.
    links: list[LinkClicks] = []


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _counts(
    emails: list[SentEmail],
    opened: Set[int],
    clicked: Set[int],
    mql_at: Mapping[str, datetime],
) -> tuple[int, int, int, int]:
    converted = sum(1 for e in emails if e.lead_id in mql_at and mql_at[e.lead_id] >= e.sent_at)
    return (
        len(emails),
        sum(1 for e in emails if e.outbox_id in opened),
        sum(1 for e in emails if e.outbox_id in clicked),
        converted,
    )


def journey_stats(
    definition: JourneyDefinition,
    sent: Iterable[SentEmail],
    opened: Set[int],
    clicked: Set[int],
    mql_at: Mapping[str, datetime],
) -> JourneyStats:
    """Figures for every email step of the journey and every A/B test in it."""
    by_step: dict[str, list[SentEmail]] = {}
    for email in sent:
        by_step.setdefault(email.step_id, []).append(email)
    steps, tests = [], []
    for step in definition.steps:
        if not isinstance(step, SendEmail):
            continue
        emails = by_step.get(step.id, [])
        count, opens, clicks, converted = _counts(emails, opened, clicked, mql_at)
        steps.append(
            StepStats(
                step_id=step.id,
                sent=count,
                opened=opens,
                clicked=clicks,
                converted=converted,
                open_rate=_rate(opens, count),
                click_rate=_rate(clicks, count),
                conversion_rate=_rate(converted, count),
            )
        )
        if step.variants:
            arms = []
            for variant in step.variants:
                mine = [e for e in emails if e.template == variant.template]
                count, _, clicks, converted = _counts(mine, opened, clicked, mql_at)
                arms.append(
                    VariantStats(
                        variant=variant.name,
                        template=variant.template,
                        sent=count,
                        clicked=clicks,
                        converted=converted,
                        click_rate=_rate(clicks, count),
                        conversion_rate=_rate(converted, count),
                    )
                )
            ranked = [a for a in arms if a.sent]
            leader = max(
                ranked, key=lambda a: (a.conversion_rate or 0, a.click_rate or 0), default=None
            )
            tests.append(
                VariantTest(
                    step_id=step.id, variants=arms, leader=leader.variant if leader else None
                )
            )
    return JourneyStats(
        journey=definition.name, version=definition.version, steps=steps, ab_tests=tests
    )
