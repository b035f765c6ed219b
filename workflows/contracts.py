"""The journey workflow's input, state and answers: pure pydantic, imported by the API too."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import JourneyDefinition

WORKFLOW_NAME = "JourneyWorkflow"
ENGAGEMENT_SIGNAL = "engagement"
STAGE_SIGNAL = "stage_changed"
PROGRESS_QUERY = "progress"
TIMELINE_QUERY = "timeline"

# Event ids remembered for de-duplication (and carried across continue-as-new).
SEEN_EVENT_IDS_KEPT = 1000
TIMELINE_ENTRIES_KEPT = 500


def journey_workflow_id(journey: str, lead_id: str) -> str:
    """The workflow id of a lead in a journey: enrollment is idempotent by construction."""
    return f"journey:{journey}:{lead_id}"


class TimelineEntry(BaseModel):
    """One thing that happened in a journey, at workflow time."""

    at: datetime
    step: str | None
    what: str


class JourneyState(BaseModel):
    """What a journey has done so far; carried across continue-as-new."""

    model_config = ConfigDict(extra="forbid")

    current_step: str | None = None
    # True when the run stopped inside `current_step` (a wait) and must resume, not re-enter.
    entered: bool = False
    wait_deadline: datetime | None = None
    # How often each step has been entered: keys effects of a step visited more than once.
    visits: dict[str, int] = Field(default_factory=dict)
    # Events counted by type; a wait compares them with the counts when the last wait ended.
    event_counts: dict[str, int] = Field(default_factory=dict)
    counts_at_last_wait: dict[str, int] = Field(default_factory=dict)
    seen_event_ids: list[str] = Field(default_factory=list)
    events_received: int = 0
    emails_sent: list[str] = Field(default_factory=list)
    stage: str | None = None
    score: int | None = None
    exit_goal: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    continued_as_new: int = 0


class JourneyInput(BaseModel):
    """The workflow input: a lead id and a snapshot of the journey. No personal data."""

    model_config = ConfigDict(extra="forbid")

    lead_id: str
    definition: JourneyDefinition
    state: JourneyState | None = None
    # Continue as new once history has this many events (None: when Temporal suggests it).
    continue_as_new_after: int | None = Field(default=None, ge=20)


class JourneyProgress(BaseModel):
    """Where a lead stands in its journey (answer to the `progress` query)."""

    journey: str
    version: str
    status: Literal["running", "completed"]
    current_step: str | None
    emails_sent: list[str]
    events_received: int
    exit_goal: str | None = None


class JourneyOutcome(BaseModel):
    """How a journey ended."""

    journey: str
    ended_at_step: str
    emails_sent: list[str]
    exit_goal: str | None = None
    events_received: int = 0
