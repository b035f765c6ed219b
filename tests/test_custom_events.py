"""Custom event types through the API on the real stack: `POST /v1/events` validates a
declared type's properties, refuses undeclared types, and a custom event reaches the lead's
journeys and its score."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import EngagementEvent
from journeys.event_types import declared_event_types
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from workflows.contracts import TIMELINE_QUERY, TimelineEntry, journey_workflow_id


async def enroll(api: httpx.AsyncClient, **lead: object) -> str:
    response = await api.post(
        "/v1/enrollments",
        json={
            "journey": "welcome",
            "lead": {"email": new_email("custom"), **lead},
            "consent": {"source": "test", "confirmed": True},
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["lead_id"])


async def stored_events(sessions: async_sessionmaker, lead_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(EngagementEvent)
            .where(EngagementEvent.lead_id == lead_id)
        )
    return int(count or 0)


def event(lead_id: str, kind: str, properties: dict) -> dict:
    return {
        "lead_id": lead_id,
        "type": kind,
        "event_id": f"{kind}-{uuid.uuid4().hex[:8]}",
        "properties": properties,
    }


@pytest.mark.parametrize(
    ("kind", "properties", "bad"),
    [
        ("trial_started", {"plan": "pro", "trial_ends_at": "next tuesday"}, "trial_ends_at"),
        ("trial_started", {"trial_ends_at": "2026-12-31"}, "plan"),
        ("trial_started", {"plan": "pro", "plna": "pro"}, "plna"),
        ("cart_abandoned", {"cart_value": -5, "currency": "EUR"}, "cart_value"),
        ("cart_abandoned", {"cart_value": 5, "currency": "euros"}, "currency"),
        ("renewal_due", {}, "renewal_date"),
        ("form_started", {"form": ""}, "form"),
        ("page_view", {"url": 42}, "url"),
    ],
)
async def test_a_declared_event_with_a_bad_property_is_a_422_naming_it_and_stores_nothing(
    api: httpx.AsyncClient, sessions: async_sessionmaker, kind: str, properties: dict, bad: str
) -> None:
    lead_id = await enroll(api)

    response = await api.post("/v1/events", json=event(lead_id, kind, properties))

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "properties", bad]]
    assert await stored_events(sessions, lead_id) == 0


async def test_an_undeclared_event_type_is_a_422_listing_the_declared_ones(
    api: httpx.AsyncClient, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api)

    response = await api.post("/v1/events", json=event(lead_id, "trial_begun", {"plan": "pro"}))

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "type"], "event_type_undeclared")
    assert "'trial_begun' is not a declared event type" in error["msg"]
    assert all(name in error["msg"] for name in declared_event_types())
    assert await stored_events(sessions, lead_id) == 0


async def test_a_built_in_event_still_takes_free_form_properties(
    api: httpx.AsyncClient, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api)
    properties = {"url": "https://example.com/pricing", "campaign": "q4", "scroll": 0.5}

    response = await api.post("/v1/events", json=event(lead_id, "page_view", properties))

    assert response.status_code == 202, response.text
    async with sessions() as session:
        stored = (
            await session.execute(select(EngagementEvent).where(EngagementEvent.lead_id == lead_id))
        ).scalar_one()
    assert (stored.type, stored.properties) == ("page_view", properties)


async def test_a_trial_started_is_stored_reaches_the_journey_and_scores(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    lead_id = await enroll(api, persona="practitioner")
    body = event(lead_id, "trial_started", {"plan": "pro", "trial_ends_at": "2026-12-31"})

    response = await api.post("/v1/events", json=body)

    assert response.status_code == 202, response.text
    journey = journey_workflow_id("welcome", lead_id)
    assert response.json()["delivered_to"] == [journey]
    async with sessions() as session:
        stored = (
            await session.execute(select(EngagementEvent).where(EngagementEvent.lead_id == lead_id))
        ).scalar_one()
    assert (stored.type, stored.properties) == (
        "trial_started", {"plan": "pro", "trial_ends_at": "2026-12-31"},
    )  # fmt: skip

    score = (await api.get(f"/v1/leads/{lead_id}/score")).json()
    [trial] = [c for c in score["contributions"] if c["label"] == "trial started"]
    assert (trial["kind"], trial["points"]) == ("behaviour", 15)
    assert trial["detail"].startswith("1 x +15")

    handle = temporal_client.get_workflow_handle(journey)

    async def timeline() -> list[str]:
        entries = await handle.query(TIMELINE_QUERY, result_type=list[TimelineEntry])
        return [e.what for e in entries]

    await eventually(timeline, lambda lines: "event: trial_started" in lines)
