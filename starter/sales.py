"""Sales feedback from the API and from a CRM's webhook, applied by the lead workflow."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.service import RPCError, RPCStatusCode

from db.models import Lead
from journeys.lifecycle import CRM_STATUS_OUTCOMES, FeedbackOutcome, outcome_for_crm_status
from starter.errors import FeedbackNotAllowed, LeadNotFound, UnknownCrmStatus
from starter.lifecycle import FeedbackConflict, LeadLifecycle
from workflows.contracts import FeedbackResult, LeadNudge, SalesFeedback


class CrmStatusChange(BaseModel):
    """`POST /v1/crm/webhook`: a CRM says a lead's status changed (signed with the secret)."""

    model_config = ConfigDict(
        extra="ignore",  # CRMs send more than we need
        json_schema_extra={
            "example": {
                "lead_id": "0b6f3a51-2d1c-4a8e-9f3e-2f1c9b7a5d10",
                "status": "Unqualified",
                "reason": "no-budget",
                "rep": "alex",
            }
        },
    )

    lead_id: uuid.UUID
    status: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=500)
    rep: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")


class CrmStatusAccepted(BaseModel):
    """The feedback a CRM status was mapped to; the lead workflow applies it."""

    lead_id: str
    outcome: FeedbackOutcome


async def _require_lead(
    sessions: async_sessionmaker, lead_id: str, loc: tuple[str, ...] = ("path", "lead_id")
) -> None:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.erased_at is not None:
            raise LeadNotFound(lead_id, loc=loc)


async def give_feedback(
    lifecycle: LeadLifecycle,
    sessions: async_sessionmaker,
    lead_id: str,
    feedback: SalesFeedback,
    request_id: str | None,
) -> FeedbackResult:
    """Apply feedback now; 409 (with the current stage) when the stage doesn't allow it."""
    await _require_lead(sessions, lead_id)
    for attempt in range(2):
        try:
            return await lifecycle.feedback(lead_id, feedback, request_id=request_id)
        except FeedbackConflict as conflict:
            raise FeedbackNotAllowed(conflict.message, conflict.current_stage) from None
        except RPCError as exc:
            # A lead enrolled before lifecycles existed has none yet: start it, then retry.
            if exc.status != RPCStatusCode.NOT_FOUND or attempt:
                raise
            await lifecycle.nudge(lead_id, LeadNudge(cause="sales feedback arrived"))
    raise AssertionError("unreachable")  # pragma: no cover


async def crm_status_changed(
    lifecycle: LeadLifecycle, sessions: async_sessionmaker, change: CrmStatusChange
) -> CrmStatusAccepted:
    """Map a CRM status to feedback and hand it to the lead workflow as a signal: a CRM
    only needs to know we have it (feedback that doesn't fit is noted on the lead)."""
    outcome = outcome_for_crm_status(change.status)
    if outcome is None:
        raise UnknownCrmStatus(change.status, sorted(CRM_STATUS_OUTCOMES))
    lead_id = str(change.lead_id)
    await _require_lead(sessions, lead_id, ("body", "lead_id"))
    reason = change.reason
    if outcome in (FeedbackOutcome.REJECT, FeedbackOutcome.LOST) and not reason:
        reason = f"crm status {change.status}"
    feedback = SalesFeedback(outcome=outcome, reason=reason, rep=change.rep)
    await lifecycle.nudge(lead_id, LeadNudge(cause=f"crm status {change.status}"[:200]))
    await lifecycle.feedback_later(lead_id, feedback)
    return CrmStatusAccepted(lead_id=lead_id, outcome=outcome)
