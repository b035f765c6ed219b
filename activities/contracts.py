"""What workflows and activities exchange: activity names and their pydantic payloads.

Pure data, no I/O: workflows import this module. Payloads carry ids, never personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import Branch, ConditionOutcome, EventType, LifecycleStage, Wait
from journeys.lifecycle import FeedbackOutcome
from journeys.scoring import LifecyclePolicy

SEND_EMAIL = "send_email"


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class SendEmailRequest(_Contract):
    """Send email template `template` to lead `lead_id`, once per `idempotency_key`."""

    lead_id: str
    workflow_id: str
    step_id: str
    template: str
    idempotency_key: str = Field(max_length=300)
    # The workflow's time: send windows and frequency caps are judged at it.
    now: datetime | None = None


class SendEmailResult(_Contract):
    """What became of a send request; a retry of a sent request returns the first result.
    `deferred`: not now (quiet hours, frequency cap, consent not yet confirmed); ask again
    at `retry_at` with the same key."""

    status: Literal["sent", "skipped", "deferred"]
    message_id: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None


class EngagementSignal(_Contract):
    """An engagement event as the lead's workflow receives it (no personal data)."""

    event_id: str = Field(min_length=1, max_length=200)
    type: EventType
    occurred_at: datetime


CHOOSE_BRANCH = "choose_branch"
RESOLVE_WAIT = "resolve_wait"
CHECK_CONDITIONS = "check_conditions"
UPDATE_LEAD = "update_lead"
HAND_OVER = "hand_over"


class ChooseBranchRequest(_Contract):
    """Evaluate `branch` against the lead's facts (read by the activity, never returned)."""

    lead_id: str
    branch: Branch
    # The workflow's time (scores decay); None: the activity's clock.
    now: datetime | None = None


class CheckConditionsRequest(_Contract):
    """Which of a wait's condition outcomes holds for the lead now (None: none)."""

    lead_id: str
    conditions: tuple[ConditionOutcome, ...]
    now: datetime | None = None


class ResolveWaitRequest(_Contract):
    """When a lead-dependent wait ends: a send window in the lead's timezone, or a moment
    read from a lead property (e.g. a webinar's start), given the workflow's `now`."""

    lead_id: str
    step: Wait
    now: datetime


class UpdateLeadRequest(_Contract):
    """Apply a `set` step: score points, a stage move, properties. Once per key."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    add_score: int | None = None
    stage: LifecycleStage | None = None
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    cause: str
    actor: str


class UpdateLeadResult(_Contract):
    previous_stage: LifecycleStage
    stage: LifecycleStage
    previous_score: int
    score: int


class HandOverRequest(_Contract):
    """Hand the lead to sales, once per `idempotency_key` (one per MQL cycle)."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    reason: str


class HandOverResult(_Contract):
    handover_id: int
    created: bool


# --- the lead workflow's activities (scoring, lifecycle, CRM, notifications) ---------------

SCORE_LEAD = "score_lead"
CHANGE_STAGE = "change_stage"
HAND_OVER_LEAD = "hand_over_lead"
HAND_OVER_ACCOUNT = "hand_over_account"
NOTIFY_OWNER = "notify_owner"
ENROLL_IN_JOURNEY = "enroll_in_journey"
REQUEST_HANDOVER = "request_handover"
SEND_CONFIRMATION = "send_confirmation"
EXPIRE_CONSENT = "expire_consent"


class ScoreLeadRequest(_Contract):
    """Rescore the lead at `now` with its persona's model; store the score if it changed."""

    lead_id: str
    now: datetime
    cause: str = Field(max_length=200)


class ScoreLeadResult(_Contract):
    """The lead's score and lifecycle facts, as the lead workflow needs them. Numbers and
    ids only: the explanation (which names fit data) stays in the database."""

    fit: int
    behaviour: int
    total: int
    qualifies: bool
    stage: LifecycleStage
    owner: str | None
    mql_cycles: int
    rejections: int
    mql_blocked_until: datetime | None
    policy: LifecyclePolicy
    # When the score will change without new events (decay, inactivity); None: it won't.
    rescore_at: datetime | None
    account_id: str | None = None
    account_qualified: bool = False
    erased: bool = False
    consent_status: str = "confirmed"


class ChangeStageRequest(_Contract):
    """Move the lead to `stage` once per key, record the transition (and the feedback that
    caused it), and tell the lead's journeys."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    stage: LifecycleStage
    cause: str = Field(max_length=200)
    actor: str = Field(max_length=200)
    new_mql_cycle: bool = False
    # Sales feedback: recorded with the transition; a rejection counts and may hold a cool-down.
    feedback_outcome: FeedbackOutcome | None = None
    feedback_note_id: int | None = None  # the reason's text, in `feedback_notes`
    feedback_reason: str | None = Field(default=None, max_length=500)  # older histories only
    feedback_rep: str | None = Field(default=None, max_length=64)
    counts_as_rejection: bool = False
    mql_blocked_until: datetime | None = None
    behaviour_carryover: float | None = None
    at: datetime


class ChangeStageResult(_Contract):
    previous_stage: LifecycleStage
    stage: LifecycleStage
    mql_cycles: int
    rejections: int


class HandOverLeadRequest(_Contract):
    """Route the lead and hand it to the CRM, once per key (one per lead and MQL cycle).
    With `reassign_from`, route it to someone else (the SLA lapsed)."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    cycle: int
    reason: str = Field(max_length=200)
    reassign_from: str | None = None


class HandOverLeadResult(_Contract):
    handover_id: int
    owner: str
    rule: str
    created: bool


class HandOverAccountRequest(_Contract):
    """Route a newly account-qualified account to its owner, once per account."""

    account_id: str
    lead_id: str
    idempotency_key: str = Field(max_length=300)


class HandOverAccountResult(_Contract):
    handover_id: int
    owner: str
    created: bool


class NotifyOwnerRequest(_Contract):
    """Email a sales rep about a lead (template under templates/notifications), once per key."""

    lead_id: str
    rep_id: str
    template: Literal["mql_assigned", "sla_reminder", "account_qualified"]
    idempotency_key: str = Field(max_length=300)


class EnrollInJourneyRequest(_Contract):
    """Start the lead in journey `journey` (as its re-entry policy allows)."""

    lead_id: str
    journey: str


class RequestHandoverRequest(_Contract):
    """A journey's `hand_over` step: ask the lead's lifecycle to make it an MQL."""

    lead_id: str
    reason: str = Field(max_length=200)
    journey: str


class ConfirmationRequest(_Contract):
    """Send the double opt-in confirmation (or its reminder) to a pending lead, once per key."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    reminder: bool = False


ENROLL_JOB_CHUNK = "enroll_job_chunk"
FINISH_ENROLLMENT_JOB = "finish_enrollment_job"


class EnrollJobChunkRequest(_Contract):
    """Enroll one chunk of a bulk enrollment job (its rows are staged in the database)."""

    job_id: str
    chunk: int


class EnrollJobChunkResult(_Contract):
    rows: int
    enrolled: int
    already_enrolled: int
    failed: int
