"""Identify a visitor without enrolling: the lead is created or updated (with its consent
claim) and its lead workflow told, so that from then on a website only sends events and
the journeys' triggers decide what starts (`POST /v1/leads`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.suppression_list import SuppressionList
from journeys.consent import ConsentStatus, SuppressionReason
from starter.services.consent import ConsentIn
from starter.services.enrollment import LeadIn, record_lead
from starter.services.input_model import InputModel
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import LeadNudge


class IdentifyRequest(InputModel):
    """`POST /v1/leads`: the lead (as in an enrollment) and, optionally, its consent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"lead": {"email": "ada@example.com", "first_name": "Ada"}},
        },
    )

    lead: LeadIn
    consent: ConsentIn | None = Field(
        default=None,
        description="How the lead opted in; unless `confirmed`, a double opt-in email goes out.",
    )


class IdentifyResult(BaseModel):
    """The lead's id (send it with events from now on) and where its consent stands."""

    lead_id: str
    consent_status: ConsentStatus
    suppressed: SuppressionReason | None = Field(
        default=None, description="The address is suppressed: it gets no marketing email"
    )


async def identify(
    sessions: async_sessionmaker,
    lifecycle: LeadLifecycle,
    request: IdentifyRequest,
    *,
    suppressions: SuppressionList,
    consent_text_version: str,
) -> IdentifyResult:
    """Create or update the lead, record its consent claim, and nudge its lead workflow
    (started if need be: it evaluates segments and triggers, and runs a double opt-in)."""
    lead_id, consent_status, outcome = await record_lead(
        sessions,
        request.lead,
        request.consent,
        consent_text_version,
        suppressions=suppressions,
    )
    await lifecycle.nudge(
        lead_id,
        LeadNudge(cause="lead identified", consent_requested=outcome.start_double_opt_in),
    )
    return IdentifyResult(
        lead_id=lead_id, consent_status=consent_status, suppressed=outcome.suppressed
    )
