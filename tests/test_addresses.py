"""Addresses with non-ASCII characters (issue 19, item 3). Decision: an internationalised
domain is delivered in its ASCII (IDNA) form; a mailbox name that isn't ASCII is refused
with a 422 naming the field. An address that can't be encoded at send time (stored before
this rule) fails that send once, recorded and visible, and the journey goes on."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import Lead, OutboxEmail
from journeys.registry import get_journey
from starter.dev.smtp_sink import SmtpSink
from starter.services.enrollment import deliverable_address, start_journey
from starter.settings import Settings
from tests.lifecycle_helpers import eventually
from tests.test_opt_out import first_send_skipped


@pytest.mark.parametrize(
    "email", ["Ünï1@example.com", "\u0430dmin1@example.com", "zoë@example.com"]
)
async def test_a_mailbox_name_that_is_not_ascii_is_a_422_naming_the_email(
    api: httpx.AsyncClient, email: str
) -> None:
    response = await api.post(
        "/v1/enrollments", json={"journey": "welcome", "lead": {"email": email}}
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "lead", "email"]
    assert "ASCII" in response.json()["detail"][0]["msg"]


async def test_an_internationalised_domain_is_delivered_in_its_ascii_form(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    local = f"ada-{uuid.uuid4().hex[:8]}"

    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": {"email": f"{local}@bücher.example"},
              "consent": {"source": "test", "confirmed": True}},
    )  # fmt: skip

    assert response.status_code == 202, response.text
    await smtp.wait_for(f"{local}@xn--bcher-kva.example", 1)


def test_an_address_is_stored_lower_case_with_an_ascii_domain() -> None:
    assert deliverable_address("Ada@Bücher.Example") == "ada@xn--bcher-kva.example"


async def test_a_stored_address_that_cannot_be_encoded_fails_its_send_once_and_visibly(
    worker: Worker, temporal_client: Client, settings: Settings, sessions: async_sessionmaker
) -> None:
    async with sessions() as session:  # as an older version would have accepted it
        lead = Lead(email=f"ünï-{uuid.uuid4().hex[:8]}@example.com", consent_status="confirmed")
        session.add(lead)
        await session.commit()
        lead_id = lead.id

    await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=lead_id,
        definition=get_journey("welcome"),
    )

    lines = await first_send_skipped(temporal_client, "welcome", lead_id)
    assert any("undeliverable address" in line for line in lines)

    async def outbox() -> list[str]:
        async with sessions() as session:
            query = select(OutboxEmail.status).where(OutboxEmail.lead_id == lead_id)
            return list((await session.execute(query)).scalars())

    assert await eventually(outbox, lambda statuses: statuses == ["failed"]) == ["failed"]
