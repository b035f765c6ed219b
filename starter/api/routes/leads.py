"""`/v1/leads/{lead_id}…`: a lead with its timeline, its score explained, its erasure."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from journeys.scoring import ScoreExplanation
from starter.api.deps import (
    AdminKey,
    Config,
    Lifecycle,
    MarketingKey,
    MarketingOrSalesKey,
    Sessions,
    Suppressions,
    Temporal,
)
from starter.api.paths import LeadId
from starter.services.erasure import ErasureResult, erase_lead
from starter.services.identify import IdentifyRequest, IdentifyResult, identify
from starter.services.lead_access import ensure_may_see
from starter.services.leads import LeadView, read_lead, read_score

router = APIRouter(tags=["leads"])

_SEEN_BY_REP: dict[int | str, dict[str, Any]] = {
    403: {"description": "A sales rep's key asked for another rep's lead"},
    404: {"description": "No lead with this id"},
}


@router.post(
    "/v1/leads",
    response_model=IdentifyResult,
    responses={409: {"description": "The email belongs to a lead with another external_id"}},
)
async def identify_lead(
    body: IdentifyRequest,
    _: MarketingKey,
    settings: Config,
    sessions: Sessions,
    lifecycle: Lifecycle,
    suppressions: Suppressions,
) -> IdentifyResult:
    """Create or update a lead (matched by `external_id`, else email) without enrolling it:
    send its events from now on, and the journeys' triggers decide what starts."""
    return await identify(
        sessions,
        lifecycle,
        body,
        suppressions=suppressions,
        consent_text_version=settings.consent_text_version,
    )


@router.get("/v1/leads/{lead_id}", response_model=LeadView, responses=_SEEN_BY_REP)
async def get_lead(
    lead_id: LeadId,
    holder: MarketingOrSalesKey,
    temporal: Temporal,
    sessions: Sessions,
    suppressions: Suppressions,
    settings: Config,
) -> LeadView:
    """A lead with its stage, score, deliverability (active, soft_bouncing, bounced or
    complained, with the last report as evidence), journeys (current step) and a timeline
    of emails, events, score changes, stage transitions, handovers, consent, sales feedback
    and mail that came back."""
    await ensure_may_see(sessions, holder, lead_id)
    return await read_lead(temporal, sessions, suppressions, lead_id, settings.soft_bounce_policy)


@router.get("/v1/leads/{lead_id}/score", response_model=ScoreExplanation, responses=_SEEN_BY_REP)
async def get_score(
    lead_id: LeadId, holder: MarketingOrSalesKey, sessions: Sessions
) -> ScoreExplanation:
    """The lead's score now, with the contributions that add up to it."""
    await ensure_may_see(sessions, holder, lead_id)
    return await read_score(sessions, lead_id)


@router.delete(
    "/v1/leads/{lead_id}",
    response_model=ErasureResult,
    responses={
        404: {"description": "No lead with this id"},
        502: {"description": "Erased, but the CRM could not be told; repeat to retry"},
    },
)
async def delete_lead(
    lead_id: LeadId,
    _: AdminKey,
    temporal: Temporal,
    sessions: Sessions,
    settings: Config,
) -> ErasureResult:
    """Erase a lead (GDPR art. 17): personal data removed, analytics rows anonymised,
    its workflows ended, the CRM told. Repeating it is harmless."""
    return await erase_lead(temporal, sessions, settings, lead_id)
