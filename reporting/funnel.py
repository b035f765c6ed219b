"""The lifecycle funnel: how many leads reached each stage, conversion between stages,
and the median time leads spend in a stage before moving on."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from statistics import median
from typing import Literal

from pydantic import BaseModel

from journeys.dsl import LifecycleStage

# The path a lead takes to revenue; recycled and disqualified sit beside it.
FUNNEL_STAGES: tuple[LifecycleStage, ...] = (
    LifecycleStage.LEAD,
    LifecycleStage.MQL,
    LifecycleStage.SAL,
    LifecycleStage.SQL,
    LifecycleStage.OPPORTUNITY,
    LifecycleStage.CUSTOMER,
)
_RANK = {stage.value: index for index, stage in enumerate(FUNNEL_STAGES)}
Interval = Literal["week", "month"]


@dataclass(frozen=True)
class LeadHistory:
    """A lead's stage path: when it was created, where it is, and each stage entered."""

    created_at: datetime
    current_stage: str
    entered: Sequence[tuple[datetime, str]]  # (when, stage), oldest first


class StageFigures(BaseModel):
    stage: str
    reached: int
    current: int
    conversion_to_next: float | None
    median_hours_in_stage: float | None


class PeriodFigures(BaseModel):
    period_start: date
    leads: int
    reached: dict[str, int]


class FunnelReport(BaseModel):
    """`GET /v1/analytics/funnel`."""

    leads: int
    stages: list[StageFigures]
    current_outside_funnel: dict[str, int]
    periods: list[PeriodFigures]


def furthest_stage(history: LeadHistory) -> int:
    """The index in FUNNEL_STAGES of the furthest stage the lead ever reached."""
    ranks = [_RANK.get(stage, 0) for _, stage in history.entered]
    ranks.append(_RANK.get(history.current_stage, 0))
    return max(ranks)


def _hours_in_stages(history: LeadHistory) -> Iterable[tuple[str, float]]:
    """(stage, hours) for every stay that ended (a stay still going has no length yet)."""
    stays = list(history.entered)
    if not stays or stays[0][1] != LifecycleStage.LEAD.value:
        stays.insert(0, (history.created_at, LifecycleStage.LEAD.value))
    for (start, stage), (end, _) in pairwise(stays):
        yield stage, max((end - start).total_seconds(), 0) / 3600


def _period_start(at: datetime, interval: Interval) -> date:
    day = at.date()
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def funnel(histories: Sequence[LeadHistory], interval: Interval | None = None) -> FunnelReport:
    """The funnel of these leads; with `interval`, also per cohort (leads created in each
    week or month)."""
    furthest = [furthest_stage(history) for history in histories]
    reached = [sum(1 for f in furthest if f >= index) for index in range(len(FUNNEL_STAGES))]
    current = Counter(history.current_stage for history in histories)
    hours: dict[str, list[float]] = defaultdict(list)
    for history in histories:
        for stage, spent in _hours_in_stages(history):
            hours[stage].append(spent)
    stages = []
    for index, stage in enumerate(FUNNEL_STAGES):
        following = reached[index + 1] if index + 1 < len(FUNNEL_STAGES) else None
        stages.append(
            StageFigures(
                stage=stage.value,
                reached=reached[index],
                current=current.get(stage.value, 0),
                conversion_to_next=(
                    round(following / reached[index], 4)
                    if following is not None and reached[index]
                    else None
                ),
                median_hours_in_stage=(
                    round(median(hours[stage.value]), 2) if hours[stage.value] else None
                ),
            )
        )
    periods: list[PeriodFigures] = []
    if interval is not None:
        cohorts: dict[date, list[int]] = defaultdict(list)
        for history, far in zip(histories, furthest, strict=True):
            cohorts[_period_start(history.created_at, interval)].append(far)
        for start in sorted(cohorts):
            members = cohorts[start]
            periods.append(
                PeriodFigures(
                    period_start=start,
                    leads=len(members),
                    reached={
                        stage.value: sum(1 for f in members if f >= index)
                        for index, stage in enumerate(FUNNEL_STAGES)
                    },
                )
            )
    return FunnelReport(
        leads=len(histories),
        stages=stages,
        current_outside_funnel={
            stage: count for stage, count in sorted(current.items()) if stage not in _RANK
        },
        periods=periods,
    )
