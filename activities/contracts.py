"""What workflows and activities exchange: activity names and their pydantic payloads.

Pure data, no I/O: workflows import this module. Payloads carry ids, never personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import Branch, ConditionOutcome, EventType, LifecycleStage, Wait

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


class SendEmailResult(_Contract):
    """What became of a send request; a retry of a sent request returns the first result."""

    status: Literal["sent", "skipped"]
    message_id: str | None = None
    reason: str | None = None


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


class CheckConditionsRequest(_Contract):
    """Which of a wait's condition outcomes holds for the lead now (None: none)."""

    lead_id: str
    conditions: tuple[ConditionOutcome, ...]


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
