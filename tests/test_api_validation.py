"""Bad input gets a clear 4xx naming the field, and nothing is started or written."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import EngagementEvent, Lead
from tests.conftest import SALES_KEY, new_email


async def lead_count(sessions: async_sessionmaker, email: str) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count()).select_from(Lead).where(Lead.email == email.lower())
        )


def locations(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


async def test_enrollment_without_email_is_422_naming_lead_email(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/enrollments", json={"journey": "welcome", "lead": {}})

    assert response.status_code == 422
    assert ["body", "lead", "email"] in locations(response)


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com"])
async def test_enrollment_with_malformed_email_is_422_and_creates_no_lead(
    api: httpx.AsyncClient, sessions: async_sessionmaker, email: str
) -> None:
    response = await api.post(
        "/v1/enrollments", json={"journey": "welcome", "lead": {"email": email}}
    )

    assert response.status_code == 422
    assert ["body", "lead", "email"] in locations(response)
    assert await lead_count(sessions, email) == 0


async def test_enrollment_into_unknown_journey_is_422_and_creates_no_lead(
    api: httpx.AsyncClient, sessions: async_sessionmaker
) -> None:
    email = new_email()
    response = await api.post(
        "/v1/enrollments", json={"journey": "no-such-journey", "lead": {"email": email}}
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "journey"]
    assert "no-such-journey" in error["msg"] and "welcome" in error["msg"]
    assert await lead_count(sessions, email) == 0


async def test_event_for_unknown_lead_is_404_and_records_nothing(
    api: httpx.AsyncClient, sessions: async_sessionmaker
) -> None:
    lead_id = str(uuid.uuid4())
    response = await api.post(
        "/v1/events", json={"lead_id": lead_id, "type": "email_click", "event_id": "x-1"}
    )

    assert response.status_code == 404
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "lead_id"] and lead_id in error["msg"]
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(EngagementEvent)
                .where(EngagementEvent.lead_id == lead_id)
            )
            == 0
        )


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"lead_id": "not-a-uuid", "type": "email_click", "event_id": "e"}, "lead_id"),
        ({"lead_id": str(uuid.uuid4()), "type": "telepathy", "event_id": "e"}, "type"),
        ({"lead_id": str(uuid.uuid4()), "type": "email_click"}, "event_id"),
        (
            {
                "lead_id": str(uuid.uuid4()),
                "type": "email_click",
                "event_id": "e",
                "occurred_at": "2026-01-01T10:00:00",
            },
            "occurred_at",
        ),
    ],
)
async def test_malformed_event_is_422_naming_the_field(
    api: httpx.AsyncClient, event: dict, field: str
) -> None:
    response = await api.post("/v1/events", json=event)

    assert response.status_code == 422
    assert ["body", field] in locations(response)


async def test_unknown_lead_view_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/v1/leads/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["detail"][0]["loc"] == ["path", "lead_id"]


async def test_request_without_api_key_is_401(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        response = await anonymous.post("/v1/enrollments", json={})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_request_with_unknown_api_key_is_401(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": "Bearer nope"}) as c:
        response = await c.get(f"/v1/leads/{uuid.uuid4()}")

    assert response.status_code == 401


async def test_sales_key_may_not_enroll(api_url: str) -> None:
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {SALES_KEY}"}
    ) as sales:
        response = await sales.post(
            "/v1/enrollments", json={"journey": "welcome", "lead": {"email": new_email()}}
        )

    assert response.status_code == 403
    assert "marketing" in response.json()["detail"]
