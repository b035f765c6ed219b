"""`POST /v1/leads`: a website identifies a visitor without enrolling it, then only sends
events (issue 14, point 2)."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import Enrollment, Lead
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from workflows.contracts import lead_workflow_id


async def test_identifying_a_visitor_creates_the_lead_and_enrolls_it_nowhere(
    api: httpx.AsyncClient, sessions: async_sessionmaker
) -> None:
    email = new_email("identify")

    response = await api.post("/v1/leads", json={"lead": {"email": email, "first_name": "Ada"}})

    assert response.status_code == 200, response.text
    lead_id = response.json()["lead_id"]
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        enrollments = (
            await session.execute(select(Enrollment).where(Enrollment.lead_id == lead_id))
        ).all()
    assert lead is not None and lead.email == email and lead.first_name == "Ada"
    assert enrollments == []


async def test_identifying_the_same_visitor_again_answers_the_same_lead(
    api: httpx.AsyncClient,
) -> None:
    email = new_email("identify-again")
    first = await api.post("/v1/leads", json={"lead": {"email": email}})
    again = await api.post("/v1/leads", json={"lead": {"email": email, "company": "ACME"}})

    assert again.status_code == 200, again.text
    assert again.json()["lead_id"] == first.json()["lead_id"]


async def test_an_identified_lead_without_confirmed_consent_gets_a_double_opt_in(
    api: httpx.AsyncClient, worker: Worker, temporal_client: Client
) -> None:
    body = {"lead": {"email": new_email("identify-doi")}, "consent": {"source": "website"}}

    response = await api.post("/v1/leads", json=body)

    assert response.json()["consent_status"] == "pending"
    lead_id = response.json()["lead_id"]
    handle = temporal_client.get_workflow_handle(lead_workflow_id(lead_id))
    await eventually(handle.describe, lambda d: d.status is not None and d.status.name == "RUNNING")


async def test_an_identified_lead_takes_events(api: httpx.AsyncClient, worker: Worker) -> None:
    lead_id = (await api.post("/v1/leads", json={"lead": {"email": new_email("id-ev")}})).json()[
        "lead_id"
    ]

    response = await api.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "page_view", "event_id": "pv-1",
              "properties": {"url": "https://example.com/pricing"}},
    )  # fmt: skip

    assert response.status_code == 202, response.text


async def test_identifying_without_an_email_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/leads", json={"lead": {"first_name": "Ada"}})

    assert response.status_code == 422
    assert ["body", "lead", "email"] in [e["loc"] for e in response.json()["detail"]]
