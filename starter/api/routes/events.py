"""`POST /v1/events`: engagement reported by an integrator."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from starter.api.deps import Intake, MarketingKey
from starter.services.events import EventIn, EventResult, refuse_future

router = APIRouter(tags=["events"])


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventResult,
    responses={404: {"description": "No lead with this id"}},
)
async def create_event(body: EventIn, _: MarketingKey, intake: Intake) -> EventResult:
    """Report engagement (a click, open, download, …) for a lead's running journeys.

    The answer comes once the event is stored; it reaches the journeys in `delivered_to`
    and the lead's scoring right after. Sending the same `event_id` again is harmless: it
    counts once (and is signalled again only if it never was).
    """
    refuse_future(body, datetime.now(UTC))
    return await intake.record(body)
