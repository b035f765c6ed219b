"""The welcome journey end to end: HTTP API → Temporal → worker → PostgreSQL → SMTP sink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import EngagementEvent, Enrollment, Lead
from journeys.registry import get_journey
from starter.dev.smtp_sink import SmtpSink
from starter.services.enrollment import start_journey
from starter.settings import Settings
from tests.conftest import body_text, new_email
from tests.lifecycle_helpers import eventually
from tests.sample_journeys import with_short_waits


async def enroll(api: httpx.AsyncClient, email: str, **lead: object) -> dict:
    response = await api.post(
        "/v1/enrollments",
        json={
            "journey": "welcome",
            "lead": {"email": email, **lead},
            "consent": {"source": "test", "confirmed": True},
        },
    )
    assert response.status_code == 202, response.text
    return response.json()


async def test_enrollment_sends_welcome_email_with_first_name(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    body = await enroll(api, email, first_name="Grace", company="Hopper Labs")

    assert body["status"] == "enrolled"
    [welcome] = await smtp.wait_for(email, 1)
    assert welcome["Subject"] == "Welcome to Nurture Test, Grace"
    html = body_text(welcome, "html")
    text = body_text(welcome, "plain")
    assert "Hi Grace," in html and "Hopper Labs" in html
    assert "Hi Grace," in text


async def test_click_after_welcome_sends_next_step_email(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client
) -> None:
    email = new_email()
    body = await enroll(api, email, first_name="Alan")
    await smtp.wait_for(email, 1)

    response = await api.post(
        "/v1/events",
        json={"lead_id": body["lead_id"], "type": "email_click", "event_id": "click-1"},
    )

    assert response.status_code == 202, response.text
    assert response.json()["delivered_to"] == [body["workflow_id"]]
    await temporal_client.get_workflow_handle(body["workflow_id"]).result()
    _welcome, next_step = smtp.to(email)
    assert next_step["Subject"] == "Alan, your next step with Nurture Test"


async def test_no_click_sends_reminder_after_the_wait(
    worker: Worker,
    smtp: SmtpSink,
    temporal_client: Client,
    sessions: async_sessionmaker,
    settings: Settings,
) -> None:
    email = new_email()
    async with sessions() as session:
        lead = Lead(email=email, first_name="Edsger", consent_status="confirmed")
        session.add(lead)
        await session.commit()
    journey = with_short_waits(get_journey("welcome"), timedelta(seconds=2))

    result = await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=lead.id,
        definition=journey,
    )
    await temporal_client.get_workflow_handle(result.workflow_id).result()

    subjects = [m["Subject"] for m in smtp.to(email)]
    assert subjects == [
        "Welcome to Nurture Test, Edsger",
        "Did you get a chance to look, Edsger?",
    ]


async def test_enrolling_the_same_lead_twice_starts_one_journey_and_one_welcome(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    first = await enroll(api, email, first_name="Barbara")
    second = await enroll(api, email.upper(), first_name="Barbara")

    assert second["status"] == "already_enrolled"
    assert second["workflow_id"] == first["workflow_id"]
    assert second["lead_id"] == first["lead_id"]
    await smtp.wait_for(email, 1)
    async with sessions() as session:
        enrollments = await session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.lead_id == first["lead_id"])
        )
    assert enrollments == 1
    await asyncio.sleep(1.0)  # give a wrongly started second journey time to send
    assert len(smtp.to(email)) == 1


async def test_the_same_click_twice_counts_once(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client
) -> None:
    email = new_email()
    body = await enroll(api, email)
    await smtp.wait_for(email, 1)
    event = {"lead_id": body["lead_id"], "type": "email_click", "event_id": "dup-1"}

    first = await api.post("/v1/events", json=event)
    second = await api.post("/v1/events", json=event)

    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    await temporal_client.get_workflow_handle(body["workflow_id"]).result()
    lead = (await api.get(f"/v1/leads/{body['lead_id']}")).json()
    assert [e["event_id"] for e in lead["events"]] == ["dup-1"]


async def test_lead_view_shows_stage_current_step_emails_and_events(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    body = await enroll(api, email, first_name="Katherine", title="CTO")
    await smtp.wait_for(email, 1)
    await api.post(
        "/v1/events",
        json={
            "lead_id": body["lead_id"],
            "type": "page_view",
            "event_id": "pv-1",
            "properties": {"url": "https://nurture.example/pricing"},
        },
    )

    # The email reaches the sink before its activity returns and the journey moves on.
    response = await eventually(
        lambda: api.get(f"/v1/leads/{body['lead_id']}"),
        lambda r: r.status_code != 200 or r.json()["journeys"][0]["current_step"] == "await_click",
    )

    assert response.status_code == 200
    lead = response.json()
    assert lead["email"] == email
    assert lead["lifecycle_stage"] == "lead"
    [journey] = lead["journeys"]
    assert journey["journey"] == "welcome"
    assert journey["status"] == "running"
    assert journey["current_step"] == "await_click"
    assert [(e["template"], e["status"]) for e in lead["emails"]] == [("welcome", "sent")]
    assert [e["type"] for e in lead["events"]] == ["page_view"]


async def test_a_delivered_event_repeated_later_is_not_signalled_again(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    body = await enroll(api, email)
    event = {"lead_id": body["lead_id"], "type": "page_view", "event_id": "old-1"}
    first = await api.post("/v1/events", json=event)

    repeat = await api.post("/v1/events", json=event)

    assert first.json()["delivered_to"] == [body["workflow_id"]]
    assert repeat.json() == {**first.json(), "duplicate": True, "delivered_to": []}


async def test_an_event_stored_but_never_signalled_is_delivered_on_retry(
    api: httpx.AsyncClient,
    worker: Worker,
    smtp: SmtpSink,
    sessions: async_sessionmaker,
    temporal_client: Client,
) -> None:
    email = new_email()
    body = await enroll(api, email, first_name="Ida")
    await smtp.wait_for(email, 1)
    async with sessions() as session:  # what a request that died before signalling leaves
        session.add(
            EngagementEvent(
                lead_id=body["lead_id"],
                event_id="half-1",
                type="email_click",
                occurred_at=datetime.now(UTC),
            )
        )
        await session.commit()

    retry = await api.post(
        "/v1/events", json={"lead_id": body["lead_id"], "type": "email_click", "event_id": "half-1"}
    )

    assert retry.json()["duplicate"] is True
    assert retry.json()["delivered_to"] == [body["workflow_id"]]
    await temporal_client.get_workflow_handle(body["workflow_id"]).result()
    assert smtp.to(email)[-1]["Subject"] == "Ida, your next step with Nurture Test"
