"""Engagement events: recorded once in the database, signalled to the lead's running journeys."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from db.models import EngagementEvent, Lead, utcnow
from db.writes import insert_once
from journeys.dsl import DeclaredEventType
from journeys.event_types import validate_properties
from starter.services.errors import InvalidParameter, LeadNotFound
from starter.services.input_model import InputModel
from starter.services.journey_signals import journeys_of, signal_journeys
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import ENGAGEMENT_SIGNAL, EngagementSignal, LeadNudge

log = logging.getLogger(__name__)


class EventIn(InputModel):
    """`POST /v1/events`: something a lead did. `event_id` makes retries harmless."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "lead_id": "0b6f3a51-2d1c-4a8e-9f3e-2f1c9b7a5d10",
                "type": "email_click",
                "event_id": "click-8f14e45f",
                "occurred_at": "2026-11-22T10:15:00Z",
                "properties": {"url": "https://example.com/pricing"},
            }
        },
    )

    lead_id: uuid.UUID
    type: DeclaredEventType = Field(
        description="A declared event type: a built-in one or a custom one (journeys/events)."
    )
    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    occurred_at: AwareDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When it happened, with its UTC offset (stored as UTC); at most "
        "5 minutes ahead of the server's clock.",
    )
    properties: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        max_length=50,
        description="Small scalars, validated with the type's properties model (a custom "
        "type refuses unknown ones); stored as validated (dates as ISO strings).",
    )

    @field_validator("occurred_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        # SQLite keeps no offset, so 10:00+05:00 must go in as 05:00Z.
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time
            raise ValueError("the time is out of range once converted to UTC") from None

    @field_validator("properties")
    @classmethod
    def _valid_for_the_type(
        cls, value: dict[str, str | int | float | bool | None], info: ValidationInfo
    ) -> dict[str, str | int | float | bool | None]:
        # The type's model (journeys/events) refuses a bad property by name:
        # loc ["body", "properties", "<name>"]. Without a valid type there is nothing to check.
        kind = info.data.get("type")
        if kind is None:
            return value
        return validate_properties(kind.value, value)


def refuse_future(event: EventIn, now: datetime) -> None:
    """A reported event may not be dated more than `FUTURE_TOLERANCE` ahead of `now`: it
    would never decay. (Only at the API: simulations record events in simulated time.)"""
    if event.occurred_at - now > FUTURE_TOLERANCE:
        raise InvalidParameter(
            ("body", "occurred_at"), "an event can't have happened more than 5 minutes from now"
        )


# How far ahead of the server's clock an event may be dated (clients' clocks drift).
FUTURE_TOLERANCE = timedelta(minutes=5)


class EventResult(BaseModel):
    """What became of an event: `duplicate` when this `event_id` was seen before."""

    lead_id: str
    event_id: str
    duplicate: bool
    delivered_to: list[str]


def _event_row(lead_id: str, event: EventIn) -> EngagementEvent:
    return EngagementEvent(
        lead_id=lead_id,
        event_id=event.event_id,
        type=event.type.value,
        occurred_at=event.occurred_at,
        properties=dict(event.properties),
    )


async def _was_signalled(session: AsyncSession, lead_id: str, event_id: str) -> bool:
    """Whether a stored event already reached the lead's journeys."""
    stored = (
        await session.execute(
            select(EngagementEvent).where(
                EngagementEvent.lead_id == lead_id, EngagementEvent.event_id == event_id
            )
        )
    ).scalar_one()
    return stored.signalled_at is not None


async def record_event(
    client: Client,
    sessions: async_sessionmaker,
    event: EventIn,
    lifecycle: LeadLifecycle | None = None,
) -> EventResult:
    """Store the event (once) and signal it to every journey of the lead that still runs.

    A repeated event is signalled again only if it never reached the journeys (the first
    request failed half-way), so a client's retry still delivers it; one that was
    delivered is not, however long ago. The workflows also ignore ids they saw recently,
    which covers two requests racing. The lead's lifecycle (`lifecycle`) is nudged to
    rescore it.
    """
    lead_id = str(event.lead_id)
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.erased_at is not None:
            raise LeadNotFound(lead_id)
        duplicate = not await insert_once(session, _event_row(lead_id, event))
        if duplicate and await _was_signalled(session, lead_id, event.event_id):
            return EventResult(
                lead_id=lead_id, event_id=event.event_id, duplicate=True, delivered_to=[]
            )
        workflow_ids = await journeys_of(session, lead_id)
    signal = EngagementSignal(
        event_id=event.event_id, type=event.type, occurred_at=event.occurred_at
    )
    delivered = await signal_journeys(client, workflow_ids, ENGAGEMENT_SIGNAL, signal)
    if lifecycle is not None:
        await lifecycle.nudge(
            lead_id, LeadNudge(cause=f"event {event.type.value}", event_id=event.event_id)
        )
    async with sessions() as session:
        await session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.lead_id == lead_id, EngagementEvent.event_id == event.event_id)
            .values(signalled_at=utcnow())
        )
        await session.commit()
    return EventResult(
        lead_id=lead_id, event_id=event.event_id, duplicate=duplicate, delivered_to=delivered
    )
