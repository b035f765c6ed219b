"""What starts a journey by itself: triggers, declared with the journey (a catalog module's
`TRIGGERS`), and the pure rules that match them against what happened to a lead.

A trigger fires once per cause: an event id, an entry into a segment, a stage reached in
an MQL cycle. The lead workflow reports causes; the trigger activity records each firing
under a unique key before it starts the journey, so a repeated event, a retried request or
a crashed worker starts nothing twice. The journey's re-entry policy still applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import DeclaredEventType, LifecycleStage


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventFilter(_Model):
    """A condition on an event's property: `url contains /pricing`, `plan eq pro`."""

    property: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    op: Literal["eq", "ne", "contains", "exists"] = "eq"
    value: str | int | float | bool | None = None

    def matches(self, properties: dict[str, Any]) -> bool:
        """Whether an event with `properties` passes this filter (text compared
        case-insensitively)."""
        actual = properties.get(self.property)
        if self.op == "exists":
            return (actual is not None) == (self.value is not False)
        if actual is None:
            return self.op == "ne"
        if self.op == "contains":
            return str(self.value).casefold() in str(actual).casefold()
        same = _comparable(actual) == _comparable(self.value)
        return same if self.op == "eq" else not same


def _comparable(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


class OnEvent(_Model):
    """Start when the lead does something: an event type, optionally filtered."""

    kind: Literal["event"] = "event"
    type: DeclaredEventType  # a built-in or declared custom type (journeys/event_types.py)
    where: tuple[EventFilter, ...] = ()


class OnSegmentEntry(_Model):
    """Start when the lead enters a segment (each entry is a cause of its own)."""

    kind: Literal["segment_entry"] = "segment_entry"
    segment: str = Field(pattern=r"^[a-z0-9-]{1,64}$")


class OnStage(_Model):
    """Start when the lead's lifecycle stage becomes `stage` (e.g. an internal alert on MQL)."""

    kind: Literal["stage"] = "stage"
    stage: LifecycleStage


Trigger = Annotated[OnEvent | OnSegmentEntry | OnStage, Field(discriminator="kind")]


def on_event(type: str, *where: EventFilter) -> OnEvent:
    """A trigger on an event type, e.g. `on_event("trial_started")`."""
    return OnEvent.model_validate({"type": type, "where": where})


def on_segment_entry(segment: str) -> OnSegmentEntry:
    """A trigger on entering a segment, e.g. `on_segment_entry("pricing-visitors")`."""
    return OnSegmentEntry(segment=segment)


def on_stage(stage: LifecycleStage) -> OnStage:
    """A trigger on a lifecycle stage, e.g. `on_stage(LifecycleStage.MQL)`."""
    return OnStage(stage=stage)


def where(
    property: str, op: Literal["eq", "ne", "contains", "exists"], value: object
) -> EventFilter:
    """An event filter, e.g. `where("url", "contains", "/pricing")`."""
    return EventFilter.model_validate({"property": property, "op": op, "value": value})


def label(trigger: OnEvent | OnSegmentEntry | OnStage) -> str:
    """How a trigger is named in timelines and firings: `event:trial_started`,
    `segment_entry:pricing-visitors`, `stage:mql`."""
    match trigger:
        case OnEvent(type=kind):
            return f"event:{kind.value if hasattr(kind, 'value') else kind}"
        case OnSegmentEntry(segment=segment):
            return f"segment_entry:{segment}"
        case OnStage(stage=stage):
            return f"stage:{stage.value}"


class HappenedEvent(_Model):
    """An event of the lead, as the trigger rules see it."""

    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = {}


class SegmentEntry(_Model):
    """The lead entered `segment` at `at` (its entry time names the cause)."""

    segment: str
    at: datetime


class StageReached(_Model):
    """The lead's stage became `stage`; `key` names this occurrence (e.g. the MQL cycle)."""

    stage: LifecycleStage
    key: str


class Firing(_Model):
    """A trigger of `journey` that fires for `cause_key`."""

    journey: str
    trigger: str
    cause_key: str


def firings(
    triggers: Mapping[str, tuple[OnEvent | OnSegmentEntry | OnStage, ...]],
    *,
    events: tuple[HappenedEvent, ...] = (),
    entries: tuple[SegmentEntry, ...] = (),
    stages: tuple[StageReached, ...] = (),
) -> list[Firing]:
    """Every (journey, cause) that fires for what happened, in a stable order."""
    found: list[Firing] = []
    for journey, declared in sorted(triggers.items()):
        for trigger in declared:
            found += _matches(journey, trigger, events, entries, stages)
    return found


def _matches(
    journey: str,
    trigger: OnEvent | OnSegmentEntry | OnStage,
    events: tuple[HappenedEvent, ...],
    entries: tuple[SegmentEntry, ...],
    stages: tuple[StageReached, ...],
) -> list[Firing]:
    name = label(trigger)
    match trigger:
        case OnEvent():
            return [
                Firing(journey=journey, trigger=name, cause_key=f"event:{e.event_id}")
                for e in events
                if e.type == trigger.type and all(f.matches(e.properties) for f in trigger.where)
            ]
        case OnSegmentEntry():
            return [
                Firing(
                    journey=journey,
                    trigger=name,
                    cause_key=f"segment:{e.segment}:{e.at.isoformat()}",
                )
                for e in entries
                if e.segment == trigger.segment
            ]
        case OnStage():
            return [
                Firing(journey=journey, trigger=name, cause_key=f"stage:{s.key}")
                for s in stages
                if s.stage == trigger.stage
            ]
