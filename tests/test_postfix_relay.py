"""The whole loop against a program nobody here wrote (issue 16): Nurture sends through
Postfix, a real MTA; Postfix delivers what it can, and for a recipient it doesn't know it
writes its own RFC 3464 bounce to the message's return path, which its transport map routes
to `nurture inbound`. The lead ends up suppressed with Postfix's status as evidence."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import ConsentRecord, InboundMessage, Lead, OutboxEmail
from starter.dev.provisioning.postfix import PostfixRelay
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.inbound.listener import InboundHandler, serve
from starter.settings import Settings
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from tests.test_welcome_journey import enroll

BOUNCE_DOMAIN = "bounces.nurture.example"
UNKNOWN_USERS = "mailbox.example.net"  # Postfix's own domain here: no user exists there


@pytest.fixture(scope="module")
def listener_port() -> int:
    """Fixed for the module: Postfix's transport map names it before the listener starts."""
    return free_port()


@pytest.fixture(scope="module")
def postfix(smtp: SmtpSink, listener_port: int) -> Iterator[PostfixRelay]:
    relay = PostfixRelay(
        port=free_port(),
        local_domain=UNKNOWN_USERS,
        routes={
            BOUNCE_DOMAIN: ("127.0.0.1", listener_port),  # bounces go to `nurture inbound`
            "example.com": ("127.0.0.1", smtp.port),  # type: ignore[attr-defined]  # a customer's MX
        },
    )
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def settings(settings: Settings, postfix: PostfixRelay) -> Settings:
    """The suite's settings, sending through Postfix with a return path per message."""
    return settings.model_copy(update={"smtp_port": postfix.port, "bounce_domain": BOUNCE_DOMAIN})


@pytest.fixture
async def listener(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client, listener_port: int
) -> AsyncIterator[int]:
    handler = InboundHandler(sessions, temporal_client, settings.task_queue, BOUNCE_DOMAIN)
    server = await serve(handler, "127.0.0.1", listener_port)
    async with server:
        yield listener_port


async def _lead(sessions: async_sessionmaker, lead_id: str) -> Lead:
    async with sessions() as session:
        found = await session.get(Lead, lead_id)
        assert found is not None
        return found


async def _inbound_of(sessions: async_sessionmaker, lead_id: str) -> list[InboundMessage]:
    async with sessions() as session:
        rows = await session.execute(
            select(InboundMessage).where(InboundMessage.lead_id == lead_id)
        )
        return list(rows.scalars())


async def test_mail_to_a_known_domain_is_relayed_with_the_messages_own_return_path(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, postfix: PostfixRelay
) -> None:
    email = new_email("relayed")

    await enroll(api, email, first_name="Ada")

    [welcome] = await smtp.wait_for(email, 1)
    assert "(Postfix)" in str(welcome["Received"])
    [sender] = smtp.senders_to(email)
    assert sender.startswith("bounce+") and sender.endswith(f"@{BOUNCE_DOMAIN}")


async def test_a_recipient_postfix_does_not_know_bounces_and_the_lead_is_suppressed(
    api: httpx.AsyncClient,
    worker: Worker,
    listener: int,
    sessions: async_sessionmaker,
    postfix: PostfixRelay,
) -> None:
    email = f"nobody-{uuid.uuid4().hex[:10]}@{UNKNOWN_USERS}"

    body = await enroll(api, email, first_name="Nobody")

    lead = await eventually(
        lambda: _lead(sessions, body["lead_id"]),
        lambda found: found.consent_status == "bounced",
        within=30,
    )
    [report] = await _inbound_of(sessions, lead.id)
    assert report.envelope_from == "<>" and report.kind == "bounce"  # the null sender
    assert report.details["statuses"][0]["status"] == "5.1.1"
    assert "X-Postfix" in report.details["statuses"][0]["diagnostic"]
    async with sessions() as session:
        evidence = (
            await session.execute(
                select(ConsentRecord.source).where(
                    ConsentRecord.lead_id == lead.id, ConsentRecord.action == "bounced"
                )
            )
        ).scalar_one()
        outbox = await session.get(OutboxEmail, report.outbox_id)
    assert evidence.startswith("DSN 5.1.1") and "unknown user" in evidence, postfix.log_tail()
    assert outbox is not None and outbox.status == "bounced"
