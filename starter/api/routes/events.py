"""`POST /v1/events`: engagement reported by an integrator."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from starter.api.deps import Lifecycle, MarketingKey, Sessions, Temporal
from starter.services.events import EventIn, EventResult, record_event, refuse_future

router = APIRouter(tags=["events"])


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventResult,
    responses={404: {"description": "No lead with this id"}},
)
async def create_event(
    body: EventIn, _: MarketingKey, temporal: Temporal, sessions: Sessions, lifecycle: Lifecycle
) -> EventResult:
    """Report engagement (a click, open, download, …) for a lead's running journeys.

    Sending the same `event_id` again is harmless: it counts once.
    """
    refuse_future(body, datetime.now(UTC))
    return await record_event(temporal, sessions, body, lifecycle)
