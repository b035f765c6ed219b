"""Sales feedback from the API and from a CRM's webhook, applied by the lead workflow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.service import RPCError, RPCStatusCode

from db.models import FeedbackNote, Lead, WebhookReceipt, utcnow
from db.writes import insert_once
from journeys.lifecycle import CRM_STATUS_OUTCOMES, FeedbackOutcome, outcome_for_crm_status
from starter.services.crm_signatures import TOLERANCE_SECONDS
from starter.services.errors import (
    FeedbackNotAllowed,
    FeedbackNotAnswered,
    LeadNotFound,
    Problem,
    Refusal,
    UnknownCrmStatus,
)
from starter.services.input_model import InputModel
from starter.services.lead_workflow import FeedbackConflict, FeedbackUnanswered, LeadLifecycle
from workflows.contracts import FeedbackResult, LeadNudge, SalesFeedback


class SalesFeedbackIn(InputModel):
    """`POST /v1/leads/{lead_id}/sales-feedback`: what sales says about a lead."""

    model_config = ConfigDict(
        extra="forbid",
        title="SalesFeedback",
        json_schema_extra={
            "example": {"outcome": "reject", "reason": "no-budget", "rep": "alex"},
        },
    )

    outcome: FeedbackOutcome
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why; required for reject and lost (a reason code such as `no-budget`). "
        "Stored with the lead (and erased with it); never sent into workflow history.",
    )
    rep: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="The rep the feedback is for. A rep's key always gives its own rep; who "
        "gave the feedback is recorded separately, as the key proves it.",
    )

    @model_validator(mode="after")
    def _reason_for_rejections(self) -> SalesFeedbackIn:
        if self.outcome in (FeedbackOutcome.REJECT, FeedbackOutcome.LOST) and not (
            self.reason and self.reason.strip()
        ):
            raise ValueError(f"a reason is required to {self.outcome.value} a lead")
        return self


async def _note(sessions: async_sessionmaker, lead_id: str, reason: str | None) -> int | None:
    """Store the feedback's free text; its id is what travels to the workflow."""
    if not reason or not reason.strip():
        return None
    async with sessions() as session:
        note = FeedbackNote(lead_id=lead_id, text=reason.strip()[:500])
        session.add(note)
        await session.commit()
        return note.id


class CrmStatusChange(InputModel):
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
    given: SalesFeedbackIn,
    request_id: str | None,
    *,
    actor: str,
) -> FeedbackResult:
    """Apply feedback now; 409 (with the current stage) when the stage doesn't allow it.
    `actor` is who gave it, as their key proves (`caller_name`)."""
    await _require_lead(sessions, lead_id)
    feedback = SalesFeedback(
        outcome=given.outcome,
        note_id=await _note(sessions, lead_id, given.reason),
        rep=given.rep,
        actor=actor,
    )
    for attempt in range(2):
        try:
            return await lifecycle.feedback(lead_id, feedback, request_id=request_id)
        except FeedbackConflict as conflict:
            raise FeedbackNotAllowed(conflict.message, conflict.current_stage) from None
        except FeedbackUnanswered:
            raise FeedbackNotAnswered() from None
        except RPCError as exc:
            # A lead enrolled before lifecycles existed has none yet: start it, then retry.
            if exc.status != RPCStatusCode.NOT_FOUND or attempt:
                raise
            await lifecycle.nudge(lead_id, LeadNudge(cause="sales feedback arrived"))
    raise AssertionError("unreachable")  # pragma: no cover


class WebhookReplayed(Problem):
    def __init__(self) -> None:
        super().__init__(
            Refusal.CONFLICT,
            ("header", "x-nurture-signature"),
            "this signed request was already received; sign a new one to send it again",
            "webhook_replayed",
        )


@asynccontextmanager
async def webhook_receipt(sessions: async_sessionmaker, digest: str) -> AsyncIterator[None]:
    """Take a signed request once: a second one with the same signature (a replay within
    the timestamp's tolerance) is a 409. If handling it fails, the receipt is given back,
    so the sender's retry of the same request is taken."""
    async with sessions() as session:
        horizon = utcnow() - timedelta(seconds=2 * TOLERANCE_SECONDS)
        await session.execute(delete(WebhookReceipt).where(WebhookReceipt.received_at < horizon))
        if not await insert_once(session, WebhookReceipt(digest=digest)):
            raise WebhookReplayed()
    try:
        yield
    except BaseException:
        async with sessions() as session:
            await session.execute(delete(WebhookReceipt).where(WebhookReceipt.digest == digest))
            await session.commit()
        raise


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
    feedback = SalesFeedback(
        outcome=outcome,
        note_id=await _note(sessions, lead_id, reason),
        rep=change.rep,
        actor="crm",
    )
    await lifecycle.nudge(lead_id, LeadNudge(cause=f"crm status {change.status}"[:200]))
    await lifecycle.feedback_later(lead_id, feedback)
    return CrmStatusAccepted(lead_id=lead_id, outcome=outcome)
