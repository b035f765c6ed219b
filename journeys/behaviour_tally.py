"""A lead's behaviour points kept as running totals, so that an event costs the same to
score whether the lead has ten prior events or ten thousand.

Half-life decay is exponential, so the decayed points of many events are one number that
decays as a whole: valued at a moment `at`, the same sum at a later moment is it times the
decay between the two. Per behaviour rule the tally keeps that sum twice — for events
before the last reset by sales (their points count `carryover`) and after it — and the
number of events. Scoring then folds in only the events not yet tallied.

It is exact up to float rounding (a sum decayed in steps against each event decayed
once), with three cases where it is rebuilt from every event instead: a different
scoring model (its fingerprint), a reset earlier than the tally's moment, and a moment
earlier than it. Events dated after the moment are never folded (they don't decay yet):
they are scored beside the tally until their moment has passed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from journeys.scoring import (
    BehaviourRule,
    LeadFacts,
    ScoredEvent,
    ScoreExplanation,
    ScoringModel,
    decay_factor,
    explain,
    rule_for,
)


class RuleTally(BaseModel):
    """One behaviour rule's events: decayed points before and after the last reset
    (valued at the tally's moment; undecayed for a rule that doesn't decay), their count."""

    model_config = ConfigDict(frozen=True)

    before: float = 0.0
    after: float = 0.0
    count: int = 0


class BehaviourTally(BaseModel):
    """Running behaviour totals of one lead under one scoring model, valued at `at`."""

    model_config = ConfigDict(frozen=True)

    model: str  # the scoring model's fingerprint (`fingerprint`)
    at: datetime
    reset_at: datetime | None = None
    last_engagement: datetime | None = None
    rules: tuple[RuleTally, ...]  # in the model's order of behaviour rules


@cache
def fingerprint(model: ScoringModel) -> str:
    """What a tally depends on: the behaviour rules and the half-life."""
    canonical = model.model_dump_json(include={"name", "behaviour_rules", "half_life"})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def empty_tally(model: ScoringModel, at: datetime, reset_at: datetime | None) -> BehaviourTally:
    """No events yet."""
    return BehaviourTally(
        model=fingerprint(model),
        at=at,
        reset_at=reset_at,
        rules=tuple(RuleTally() for _ in model.behaviour_rules),
    )


def usable(
    tally: BehaviourTally | None, model: ScoringModel, reset_at: datetime | None, now: datetime
) -> bool:
    """Whether events can be folded into `tally` at `now` (else rebuild it from all of them):
    the same model, a moment not after `now`, and no reset it can't follow (an earlier one,
    or one taken back)."""
    if tally is None or tally.model != fingerprint(model) or tally.at > now:
        return False
    if reset_at == tally.reset_at:
        return True
    # A later reset splits after every tallied event (dated at or before `at`): all of
    # them are before it. One exactly at `at` could be an event at the reset itself.
    return reset_at is not None and reset_at > tally.at


def fold(
    tally: BehaviourTally,
    model: ScoringModel,
    events: Iterable[ScoredEvent],
    *,
    now: datetime,
    reset_at: datetime | None,
) -> BehaviourTally:
    """`tally` valued at `now` with `events` added (dated at or before `now`: a later one
    would be folded as if it happened at `now`). Call it only when `usable`."""
    rules = model.behaviour_rules
    shift = decay_factor(now - tally.at, model.half_life)
    moved = reset_at != tally.reset_at  # a new reset after every tallied event
    sums: list[list[float]] = []
    counts: list[int] = []
    for rule, kept in zip(rules, tally.rules, strict=True):
        factor = shift if rule.decays else 1.0
        before, after = kept.before * factor, kept.after * factor
        sums.append([before + after, 0.0] if moved else [before, after])
        counts.append(kept.count)
    last = tally.last_engagement
    index = {id(rule): number for number, rule in enumerate(rules)}
    for event in events:
        matched = rule_for(model, event)
        if matched is None:
            continue
        number = index[id(matched)]
        if matched.points > 0 and (last is None or event.occurred_at > last):
            last = event.occurred_at
        weight = decay_factor(now - event.occurred_at, model.half_life) if matched.decays else 1.0
        side = 0 if reset_at is not None and event.occurred_at < reset_at else 1
        sums[number][side] += matched.points * weight
        counts[number] += 1
    return BehaviourTally(
        model=tally.model,
        at=now,
        reset_at=reset_at,
        last_engagement=last,
        rules=tuple(
            RuleTally(before=before, after=after, count=count)
            for (before, after), count in zip(sums, counts, strict=True)
        ),
    )


def score_tally(
    model: ScoringModel,
    facts: LeadFacts,
    tally: BehaviourTally,
    *,
    now: datetime,
    adjustment: int = 0,
    carryover: float = 1.0,
) -> ScoreExplanation:
    """The lead's score at `now` (not before the tally's moment) from its tally."""
    shift = decay_factor(now - tally.at, model.half_life)
    totals: dict[BehaviourRule, tuple[float, int]] = {}
    for rule, kept in zip(model.behaviour_rules, tally.rules, strict=True):
        if kept.count == 0:
            continue
        factor = shift if rule.decays else 1.0
        raw = (kept.before * carryover + kept.after) * factor
        earlier, count = totals.get(rule, (0.0, 0))  # two equal rules add up, as in score_lead
        totals[rule] = (earlier + raw, count + kept.count)
    return explain(model, facts, totals, tally.last_engagement, now=now, adjustment=adjustment)


def tally_from_json(stored: dict[str, Any] | None) -> BehaviourTally | None:
    """A stored tally (None: none, or one this code can't read: it is rebuilt)."""
    if not stored:
        return None
    try:
        return BehaviourTally.model_validate(stored)
    except ValueError:
        return None
