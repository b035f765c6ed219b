"""The email activity sends once per key, against the real PostgreSQL outbox and SMTP sink."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.contracts import SendEmailRequest
from activities.email import EmailActivities
from db.models import Lead, OutboxEmail
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.settings import Settings
from tests.conftest import new_email


async def make_lead(sessions: async_sessionmaker, email: str) -> str:
    async with sessions() as session:
        lead = Lead(email=email, first_name="Margaret", consent_status="confirmed")
        session.add(lead)
        await session.commit()
        return lead.id


def request(lead_id: str, key: str) -> SendEmailRequest:
    return SendEmailRequest(
        lead_id=lead_id,
        workflow_id="wf-test",
        step_id="welcome",
        template="welcome",
        idempotency_key=key,
    )


async def test_a_retried_send_with_the_same_key_delivers_once(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email = new_email()
    lead_id = await make_lead(sessions, email)
    activities = EmailActivities(settings, sessions)
    key = f"test/{uuid.uuid4()}"

    first = await ActivityEnvironment().run(activities.send_email, request(lead_id, key))
    second = await ActivityEnvironment().run(activities.send_email, request(lead_id, key))

    assert first == second
    assert first.status == "sent"
    [message] = await smtp.wait_for(email, 1)
    assert message["Message-ID"] == first.message_id


async def test_a_send_that_failed_at_the_smtp_server_is_retried_with_the_same_message_id(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email = new_email()
    lead_id = await make_lead(sessions, email)
    key = f"test/{uuid.uuid4()}"
    down = Settings(**{**settings.model_dump(by_alias=True), "SMTP_PORT": free_port()})

    with pytest.raises(OSError):
        await ActivityEnvironment().run(
            EmailActivities(down, sessions).send_email, request(lead_id, key)
        )
    async with sessions() as session:
        pending = (
            await session.execute(select(OutboxEmail).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    assert pending.status == "pending"

    result = await ActivityEnvironment().run(
        EmailActivities(settings, sessions).send_email, request(lead_id, key)
    )

    [message] = await smtp.wait_for(email, 1)
    assert message["Message-ID"] == pending.message_id == result.message_id


async def test_a_lead_that_no_longer_exists_is_skipped(
    settings: Settings, sessions: async_sessionmaker
) -> None:
    result = await ActivityEnvironment().run(
        EmailActivities(settings, sessions).send_email, request(str(uuid.uuid4()), "k")
    )

    assert result.status == "skipped"
