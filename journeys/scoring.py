"""Lead scoring as pure functions: fit from explicit data, behaviour from engagement with
half-life decay, and an explanation whose contributions add up to the score.

No Temporal, database or I/O imports: the scoring activity reads the lead and its events,
calls `score_lead`, and stores what it returns. Models are written per persona in
`journeys/scoring_models.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.dsl import DeclaredEventType

FitAttribute = Literal["title", "company_size", "industry", "country", "email_domain"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FitRule(_Frozen):
    """Points for one fact about the lead. Within a `group` the first matching rule counts.

    Text attributes match case-insensitively: `title` when it contains one of `any_of` as
    whole words,
    the others when they equal one. `company_size` matches `min <= size < max`.
    """

    group: str
    label: str
    attribute: FitAttribute
    points: int
    any_of: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> FitRule:
        if not self.any_of and self.min is None and self.max is None:
            raise ValueError(f"fit rule {self.label!r} needs any_of or min/max")
        return self

    def matches(self, facts: LeadFacts) -> bool:
        value = getattr(facts, self.attribute)
        if value is None:
            return False
        if isinstance(value, int):
            return (self.min is None or value >= self.min) and (
                self.max is None or value < self.max
            )
        text = str(value).casefold()
        words = [w.casefold() for w in self.any_of]
        if self.attribute == "title":  # whole words: "cto" is not in "director"
            return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)
        return text in words


class BehaviourRule(_Frozen):
    """Points per event of a type (optionally only for URLs containing one of `url_contains`),
    at most `cap` in all (before the sign: a negative rule's cap bounds its penalty).
    `event` is any declared type, built-in or custom (`journeys/events/catalog.py`)."""

    label: str
    event: DeclaredEventType
    points: int
    cap: int = Field(gt=0)
    url_contains: tuple[str, ...] = ()
    decays: bool = True

    def matches(self, event: ScoredEvent) -> bool:
        if event.type != self.event:
            return False
        if not self.url_contains:
            return True
        url = (event.url or "").casefold()
        return any(part.casefold() in url for part in self.url_contains)


class InactivityPenalty(_Frozen):
    """Points (negative) once the lead has shown no engagement for `after`."""

    after: timedelta
    points: int = Field(lt=0)


class LifecyclePolicy(_Frozen):
    """What happens around an MQL for leads of this model: SLA, recycling, disqualification."""

    # Sales must accept an MQL within this time, else the owner is reminded …
    sla_accept_within: timedelta = timedelta(days=2)
    # … and if still nobody accepts after this much more, the lead is reassigned.
    sla_reassign_after: timedelta = timedelta(days=1)
    # After a rejection the lead cannot become an MQL again for this long.
    cooldown: timedelta = timedelta(days=30)
    # The rejection that reaches this count disqualifies the lead instead of recycling it.
    max_rejections: int = Field(default=3, ge=1)
    # Share of the behaviour score kept on rejection: 0 resets it, 0.5 halves it.
    reject_carryover: float = Field(default=0.0, ge=0.0, le=1.0)
    # How often a lead's score is recomputed without events (decay, inactivity).
    rescore_every: timedelta = timedelta(days=1)
    recycle_journey: str = "recycled-nurture"
    customer_journey: str = "post-purchase"


class ScoringModel(_Frozen):
    """A persona's scoring model: fit rules, behaviour rules, decay and thresholds."""

    name: str
    fit_rules: tuple[FitRule, ...]
    behaviour_rules: tuple[BehaviourRule, ...]
    half_life: timedelta = Field(default=timedelta(days=30))
    inactivity: InactivityPenalty | None = None
    # An MQL needs both: fit at least `fit_threshold`, behaviour at least `behaviour_threshold`.
    fit_threshold: int
    behaviour_threshold: int
    policy: LifecyclePolicy = LifecyclePolicy()

    @model_validator(mode="after")
    def _positive_half_life(self) -> ScoringModel:
        if self.half_life <= timedelta(0):
            raise ValueError("half_life must be positive")
        return self


class LeadFacts(_Frozen):
    """The explicit data scoring reads (the activity builds it from the lead row)."""

    title: str | None = None
    company_size: int | None = None
    industry: str | None = None
    country: str | None = None
    email_domain: str | None = None
    created_at: datetime | None = None


class ScoredEvent(_Frozen):
    """An engagement event as scoring sees it."""

    type: DeclaredEventType
    occurred_at: datetime
    url: str | None = None


class Contribution(_Frozen):
    """One line of a score explanation; the points of all lines add up to the total."""

    kind: Literal["fit", "behaviour", "adjustment"]
    label: str
    points: int
    detail: str = ""


class ScoreExplanation(_Frozen):
    """A lead's score at `at`, with the contributions it is made of."""

    model: str
    at: datetime
    fit: int
    behaviour: int
    total: int
    fit_threshold: int
    behaviour_threshold: int
    qualifies: bool
    contributions: tuple[Contribution, ...]


def decay_factor(age: timedelta, half_life: timedelta) -> float:
    """How much of an event's points remain after `age` (1.0 for events in the future)."""
    if age <= timedelta(0):
        return 1.0
    return float(0.5 ** (age / half_life))


def score_lead(
    model: ScoringModel,
    facts: LeadFacts,
    events: Sequence[ScoredEvent],
    *,
    now: datetime,
    adjustment: int = 0,
    reset_at: datetime | None = None,
    carryover: float = 1.0,
) -> ScoreExplanation:
    """Score a lead at `now`.

    Events before `reset_at` (the last rejection by sales) count only `carryover` of their
    points. `adjustment` is what journeys added by hand (`set` steps). Every contribution is
    rounded on its own, so the explanation adds up to the total exactly.
    """
    totals: dict[BehaviourRule, tuple[float, int]] = {}
    last_engagement: datetime | None = None
    for event in events:
        matched = rule_for(model, event)
        if matched is None:
            continue
        if matched.points > 0 and (last_engagement is None or event.occurred_at > last_engagement):
            last_engagement = event.occurred_at
        weight = decay_factor(now - event.occurred_at, model.half_life) if matched.decays else 1.0
        if reset_at is not None and event.occurred_at < reset_at:
            weight *= carryover
        raw, count = totals.get(matched, (0.0, 0))
        totals[matched] = (raw + matched.points * weight, count + 1)
    return explain(model, facts, totals, last_engagement, now=now, adjustment=adjustment)


def rule_for(model: ScoringModel, event: ScoredEvent) -> BehaviourRule | None:
    """The behaviour rule an event scores by: the model's first that matches it."""
    return next((r for r in model.behaviour_rules if r.matches(event)), None)


def explain(
    model: ScoringModel,
    facts: LeadFacts,
    totals: Mapping[BehaviourRule, tuple[float, int]],
    last_engagement: datetime | None,
    *,
    now: datetime,
    adjustment: int = 0,
) -> ScoreExplanation:
    """The explanation of a score at `now` from the lead's facts and, per behaviour rule,
    its events' points (decayed, carried over) and their number; `last_engagement` is the
    latest event that scored positive points (for the inactivity penalty)."""
    contributions: list[Contribution] = []
    seen_groups: set[str] = set()
    for rule in model.fit_rules:
        if rule.group in seen_groups or not rule.matches(facts):
            continue
        seen_groups.add(rule.group)
        contributions.append(Contribution(kind="fit", label=rule.label, points=rule.points))
    fit = sum(c.points for c in contributions)

    behaviour_lines: list[Contribution] = []
    for (
        behaviour_rule
    ) in model.behaviour_rules:  # in model order, so explanations read the same way
        if behaviour_rule not in totals:
            continue
        raw, count = totals[behaviour_rule]
        capped = max(-behaviour_rule.cap, min(behaviour_rule.cap, raw))
        points = round(capped)
        notes = [f"{count} x {behaviour_rule.points:+d}"]
        if behaviour_rule.decays:
            notes.append(f"half-life {model.half_life.days} d")
        if abs(raw) > behaviour_rule.cap:
            notes.append(f"capped at {behaviour_rule.cap}")
        behaviour_lines.append(
            Contribution(
                kind="behaviour", label=behaviour_rule.label, points=points, detail=", ".join(notes)
            )
        )
    if model.inactivity is not None:
        since = last_engagement or facts.created_at
        if since is not None and now - since >= model.inactivity.after:
            behaviour_lines.append(
                Contribution(
                    kind="behaviour",
                    label="inactive",
                    points=model.inactivity.points,
                    detail=f"no engagement for {model.inactivity.after.days} days",
                )
            )
    if adjustment:
        behaviour_lines.append(
            Contribution(kind="adjustment", label="journey adjustments", points=adjustment)
        )
    contributions.extend(behaviour_lines)
    behaviour = sum(c.points for c in behaviour_lines)
    return ScoreExplanation(
        model=model.name,
        at=now,
        fit=fit,
        behaviour=behaviour,
        total=fit + behaviour,
        fit_threshold=model.fit_threshold,
        behaviour_threshold=model.behaviour_threshold,
        qualifies=fit >= model.fit_threshold and behaviour >= model.behaviour_threshold,
        contributions=tuple(contributions),
    )
