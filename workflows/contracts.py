"""The workflows' inputs, state, signal payloads and answers: pure pydantic, imported by
the API too."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.consent import ConsentStatus
from journeys.dsl import DeclaredEventType, JourneyDefinition, LifecycleStage
from journeys.lifecycle import FeedbackOutcome

WORKFLOW_NAME = "JourneyWorkflow"
ENGAGEMENT_SIGNAL = "engagement"
STAGE_SIGNAL = "stage_changed"
CONSENT_SIGNAL = "consent_changed"
# The lead left segments (their names): exit goals `on_segment_exit` end the journey.
SEGMENT_LEFT_SIGNAL = "segment_left"
PROGRESS_QUERY = "progress"
TIMELINE_QUERY = "timeline"

# Event ids remembered for de-duplication (and carried across continue-as-new).
SEEN_EVENT_IDS_KEPT = 1000
TIMELINE_ENTRIES_KEPT = 500


def journey_workflow_id(journey: str, lead_id: str) -> str:
    """The workflow id of a lead in a journey: enrollment is idempotent by construction."""
    return f"journey:{journey}:{lead_id}"


class EngagementSignal(BaseModel):
    """An engagement event as a journey's workflow receives it (no personal data).

    `type` is any declared event type (`journeys.event_types`): an `EventType` member for a
    built-in one, a `CustomEventType` for a custom one; on the wire, its plain name.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(min_length=1, max_length=200)
    type: DeclaredEventType
    occurred_at: datetime


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
    stage: LifecycleStage | None = None
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
    # Bound on one attempt of an effect (None: 60 s); a crashed worker's attempt is retried
    # after it.
    effect_timeout_seconds: int | None = Field(default=None, ge=1, le=3600)


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


# --- the lead workflow: one per lead, owner of its score and lifecycle -----------------

LEAD_WORKFLOW_NAME = "LeadWorkflow"
LEAD_NUDGE_SIGNAL = "lead_changed"
# Continue as new, to run the current code (after a deploy that added patched behaviour).
UPGRADE_SIGNAL = "upgrade"
SALES_FEEDBACK_UPDATE = "sales_feedback"
SALES_FEEDBACK_SIGNAL = "sales_feedback_signal"
LEAD_STATUS_QUERY = "lead_status"


def lead_workflow_id(lead_id: str) -> str:
    """The workflow id of a lead's lifecycle: one per lead."""
    return f"lead:{lead_id}"


class SlaPhase(IntEnum):
    """Where an MQL's sales SLA stands (an int in history: values never change)."""

    RUNNING = 0
    OWNER_REMINDED = 1
    REASSIGNED = 2


class DoubleOptInPhase(IntEnum):
    """Where a pending lead's double opt-in stands (an int in history: values never change)."""

    NOT_RUNNING = 0
    CONFIRMATION_SENT = 1
    REMINDED = 2


class LeadNudge(BaseModel):
    """Something about the lead changed: rescore it, and maybe act on a request.

    `handover_reason`: a journey asks to hand the lead over (demo request, `hand_over` step).
    `stage`: a journey's `set` step asks for a stage; the lifecycle decides if it may.
    """

    model_config = ConfigDict(extra="forbid")

    cause: str = Field(max_length=200)
    handover_reason: str | None = Field(default=None, max_length=200)
    stage: LifecycleStage | None = None
    requested_by: str | None = Field(default=None, max_length=200)
    # A double opt-in was requested: send the confirmation email (and remind, and expire).
    consent_requested: bool = False
    # The event that caused the nudge: its triggers fire (once per event id).
    event_id: str | None = Field(default=None, max_length=200)


class SalesFeedback(BaseModel):
    """Sales feedback as the lead workflow takes it (update or signal): ids and codes only.

    The reason's free text stays in the database (`feedback_notes`); `note_id` names it, so
    a rep's words (which may hold names, numbers, addresses) never enter workflow history.
    """

    model_config = ConfigDict(extra="forbid")

    outcome: FeedbackOutcome
    note_id: int | None = Field(default=None, description="The reason, in `feedback_notes`.")
    rep: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")
    # Who gave it, as the key proves (`sales:kim`, `sales`, `admin`, `crm`); `rep` is the
    # rep it is for.
    actor: str | None = Field(default=None, max_length=200)
    # Only in histories from before notes existed: the reason's text itself.
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _reason_for_rejections(self) -> SalesFeedback:
        if self.outcome in (FeedbackOutcome.REJECT, FeedbackOutcome.LOST) and not (
            self.note_id is not None or (self.reason and self.reason.strip())
        ):
            raise ValueError(f"a reason is required to {self.outcome.value} a lead")
        return self


class QueuedFeedback(BaseModel):
    """Feedback the lead workflow accepted and answered, whose effects (the database's stage
    change, recycling, journeys) its main loop has yet to run."""

    model_config = ConfigDict(extra="forbid")

    feedback: SalesFeedback
    previous: LifecycleStage
    target: LifecycleStage
    key: str
    at: datetime


class FeedbackResult(BaseModel):
    """What sales feedback did to the lead."""

    lead_id: str
    outcome: FeedbackOutcome
    previous_stage: LifecycleStage
    stage: LifecycleStage
    owner: str | None = None
    rejections: int = 0


class LeadStatus(BaseModel):
    """The lead workflow's view of the lead (answer to the `lead_status` query)."""

    stage: LifecycleStage | None
    score: int
    fit: int
    behaviour: int
    qualifies: bool
    owner: str | None
    mql_cycles: int
    rejections: int
    mql_blocked_until: datetime | None
    mql_at: datetime | None
    sla_phase: SlaPhase
    timeline: list[TimelineEntry]


class LeadState(BaseModel):
    """What the lead workflow carries across continue-as-new."""

    model_config = ConfigDict(extra="forbid")

    stage: LifecycleStage | None = None
    score: int = 0
    fit: int = 0
    behaviour: int = 0
    qualifies: bool = False
    owner: str | None = None
    mql_cycles: int = 0
    rejections: int = 0
    mql_blocked_until: datetime | None = None
    mql_at: datetime | None = None
    sla_phase: SlaPhase = SlaPhase.RUNNING
    rescore_at: datetime | None = None
    account_id: str | None = None
    account_qualified: bool = False
    account_handed_over: bool = False
    consent_status: ConsentStatus = ConsentStatus.CONFIRMED
    # Double opt-in; `doi_round` keys its effects.
    doi_phase: DoubleOptInPhase = DoubleOptInPhase.NOT_RUNNING
    doi_round: int = 0
    doi_sent_at: datetime | None = None
    # The next moment a time-based segment condition can flip (a window passing).
    segments_recheck_at: datetime | None = None
    pending: list[LeadNudge] = Field(default_factory=list)
    feedback_queue: list[QueuedFeedback] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)


class LeadInput(BaseModel):
    """The lead workflow's input: an id (the rest is read from the database by activities)."""

    model_config = ConfigDict(extra="forbid")

    lead_id: str
    state: LeadState | None = None
    # Bound on one attempt of an effect: a crashed worker's attempt is retried after it.
    effect_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    # Scoring and segments as local activities (`NURTURE_LOCAL_BOOKKEEPING`); off on the
    # Java time-skipping test server, which mishandles them (docs/lifecycle.md).
    local_bookkeeping: bool = True
