"""Sales feedback: `POST /v1/leads/{lead_id}/sales-feedback` (a rep or an integration) and
`POST /v1/crm/webhook` (a CRM's signed status change)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from starter.api.auth import caller_name
from starter.api.deps import Config, Lifecycle, SalesKey, Sessions
from starter.api.paths import IdempotencyKey, LeadId
from starter.services.crm_signatures import SIGNATURE_HEADER, SignatureInvalid, verify
from starter.services.errors import SignatureRejected
from starter.services.lead_access import ensure_may_see
from starter.services.sales import (
    CrmStatusAccepted,
    CrmStatusChange,
    SalesFeedbackIn,
    crm_status_changed,
    give_feedback,
    webhook_receipt,
)
from starter.settings import SettingsError
from workflows.contracts import FeedbackResult

router = APIRouter(tags=["sales"])


@router.post(
    "/v1/leads/{lead_id}/sales-feedback",
    response_model=FeedbackResult,
    responses={
        403: {"description": "A sales rep's key gave feedback on another rep's lead"},
        404: {"description": "No lead with this id"},
        409: {"description": "The feedback does not fit the lead's stage (current_stage)"},
    },
)
async def post_sales_feedback(
    lead_id: LeadId,
    body: SalesFeedbackIn,
    holder: SalesKey,
    sessions: Sessions,
    lifecycle: Lifecycle,
    idempotency_key: IdempotencyKey = None,
) -> FeedbackResult:
    """Accept, reject (with a reason), qualify, win or lose a lead.

    Rejecting returns the lead to nurture (`recycled-nurture`) with a cool-down before it
    can be an MQL again; the last allowed rejection disqualifies it. Feedback that does not
    fit the lead's stage is refused with 409 and the stage the lead is in. A rep's key
    gives feedback on the rep's own leads, as that rep.
    """
    await ensure_may_see(sessions, holder, lead_id)
    if holder.rep is not None:
        body = body.model_copy(update={"rep": holder.rep})
    return await give_feedback(
        lifecycle, sessions, lead_id, body, idempotency_key, actor=caller_name(holder)
    )


@router.post(
    "/v1/crm/webhook",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CrmStatusAccepted,
    responses={
        401: {"description": "Missing, malformed, stale or forged X-Nurture-Signature"},
        409: {"description": "This signed request was already received (a replay)"},
        422: {"description": "Unknown CRM status"},
    },
)
async def crm_webhook(
    request: Request, settings: Config, sessions: Sessions, lifecycle: Lifecycle
) -> CrmStatusAccepted:
    """A CRM reports a lead's status change (e.g. `Unqualified`), signed with
    `CRM_WEBHOOK_SECRET`: it becomes the same sales feedback, applied asynchronously."""
    body = await request.body()  # the raw bytes: the signature covers them exactly
    try:
        digest = verify(
            body, request.headers.get(SIGNATURE_HEADER), settings.require_crm_webhook_secret()
        )
    except (SignatureInvalid, SettingsError) as exc:
        raise SignatureRejected(str(exc)) from None
    try:
        change = CrmStatusChange.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    async with webhook_receipt(sessions, digest):
        return await crm_status_changed(lifecycle, sessions, change)
