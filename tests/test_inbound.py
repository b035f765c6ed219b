"""What comes back from the mail world, on the real stack (issue 16): the inbound SMTP
listener stores each message before its 250, a workflow per message classifies it, and a
permanent bounce or a complaint to a message's own return path suppresses its address,
with the report's evidence. A forged report changes nothing."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.email import EmailActivities
from db.models import ConsentRecord, EngagementEvent, InboundMessage, Lead, OutboxEmail
from journeys.inbound_mail import InboundKind, classify
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, BOUNCE_DOMAIN, new_email
from tests.lifecycle_helpers import eventually
from tests.test_email_activity import make_lead, request

SAMPLES = Path(__file__).with_name("data") / "inbound"


async def _sent_to(settings: Settings, sessions: async_sessionmaker, email: str) -> str:
    """Send one journey email to a new lead; its return path."""
    configured = settings.model_copy(update={"bounce_domain": BOUNCE_DOMAIN})
    lead_id = await make_lead(sessions, email)
    key = f"test/{uuid.uuid4()}"
    await ActivityEnvironment().run(
        EmailActivities(configured, sessions).send_email, request(lead_id, key)
    )
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    return LinkTokens(settings.require_secret_key()).return_path(outbox_id, BOUNCE_DOMAIN)


def _report(sample: str, return_path: str, message_id: str | None = None) -> bytes:
    """A sample report, sent to `return_path`, with its own Message-ID."""
    raw = (SAMPLES / sample).read_bytes()
    raw = raw.replace(b"bounce+4711-mfrggzdfmztwq2lk@bounces.example.com", return_path.encode())
    own = f"Message-ID: <{message_id or f'{uuid.uuid4()}@relay'}>".encode()
    return re.sub(rb"(?mi)^Message-I[Dd]: <[^>]*>", own, raw, count=1)


async def _deliver(port: int, return_path: str, raw: bytes) -> None:
    """As an MTA returns mail: from the null sender `<>`."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        await client.sendmail("", [return_path], raw)


async def _stored(sessions: async_sessionmaker, message_id: str) -> list[InboundMessage]:
    """The inbound rows of the message with this Message-ID."""
    async with sessions() as session:
        rows = await session.execute(
            select(InboundMessage).where(InboundMessage.message_key == f"<{message_id}>")
        )
        return list(rows.scalars())


async def _lead(sessions: async_sessionmaker, email: str) -> Lead:
    async with sessions() as session:
        found = (await session.execute(select(Lead).where(Lead.email == email))).scalar_one()
        return found


def test_the_samples_classify_as_what_they_are() -> None:
    kinds = {p.name: classify(p.read_bytes()).kind for p in SAMPLES.glob("*.eml")}

    assert kinds == {
        "postfix_bounce.eml": InboundKind.BOUNCE,
        "arf_complaint.eml": InboundKind.COMPLAINT,
        "out_of_office.eml": InboundKind.AUTO_REPLY,
    }
    assert classify(b"\x00\xff not mail at all").kind in (
        InboundKind.UNPARSEABLE,
        InboundKind.REPLY,
    )


async def test_a_permanent_bounce_suppresses_the_address_with_the_dsn_as_evidence(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    email = new_email("dsn")
    return_path = await _sent_to(settings, sessions, email)

    await _deliver(
        listener, return_path, _report("postfix_bounce.eml", return_path, f"{uuid.uuid4()}@relay")
    )

    lead = await eventually(
        lambda: _lead(sessions, email), lambda found: found.consent_status == "bounced"
    )
    async with sessions() as session:
        evidence = (
            await session.execute(
                select(ConsentRecord.source).where(
                    ConsentRecord.lead_id == lead.id, ConsentRecord.action == "bounced"
                )
            )
        ).scalar_one()
    assert "5.1.1" in evidence and "User unknown" in evidence


async def test_a_complaint_unsubscribes_and_suppresses(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    email = new_email("arf")
    return_path = await _sent_to(settings, sessions, email)

    await _deliver(listener, return_path, _report("arf_complaint.eml", return_path))

    await eventually(
        lambda: _lead(sessions, email), lambda found: found.consent_status == "complained"
    )


async def test_a_forged_bounce_suppresses_nobody(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    email = new_email("forged")
    genuine = await _sent_to(settings, sessions, email)
    outbox_id = int(genuine.split("+")[1].split("-")[0])
    forged = LinkTokens("f" * 40).return_path(outbox_id, BOUNCE_DOMAIN)
    message_id = f"{uuid.uuid4()}@relay"

    await _deliver(listener, forged, _report("postfix_bounce.eml", forged, message_id))

    [row] = await eventually(
        lambda: _stored(sessions, message_id),
        lambda rows: bool(rows) and rows[0].status == "processed",
    )
    assert row.outbox_id is None and row.details["action"].startswith("names no message")
    assert (await _lead(sessions, email)).consent_status == "confirmed"


async def test_a_message_delivered_twice_is_stored_and_processed_once(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    email = new_email("twice")
    return_path = await _sent_to(settings, sessions, email)
    message_id = f"{uuid.uuid4()}@relay"
    raw = _report("postfix_bounce.eml", return_path, message_id)

    await _deliver(listener, return_path, raw)
    await _deliver(listener, return_path, raw)
    await asyncio.sleep(1)

    rows = await _stored(sessions, message_id)
    assert len(rows) == 1


async def test_mail_for_another_domain_is_refused(listener: int) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(
            b"Subject: hi\r\n\r\nhello\r\n", sender="x@y.example",
            recipients=["someone@elsewhere.example"], hostname="127.0.0.1", port=listener,
        )  # fmt: skip


async def test_a_bounce_for_an_erased_lead_changes_nothing_and_keeps_no_personal_data(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    email = new_email("erased")
    return_path = await _sent_to(settings, sessions, email)
    lead_id = (await _lead(sessions, email)).id
    erased = await api.delete(
        f"/v1/leads/{lead_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert erased.status_code == 200, erased.text
    message_id = f"{uuid.uuid4()}@relay"

    await _deliver(listener, return_path, _report("postfix_bounce.eml", return_path, message_id))

    [row] = await eventually(
        lambda: _stored(sessions, message_id),
        lambda rows: bool(rows) and rows[0].status == "processed",
    )
    assert (row.raw, row.recipients, row.lead_id) == (b"", [], None)
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None and lead.consent_status == "erased"


async def test_the_api_lists_what_came_back_to_admins_without_the_bytes(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    email = new_email("listed")
    return_path = await _sent_to(settings, sessions, email)
    await _deliver(listener, return_path, _report("postfix_bounce.eml", return_path))
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    lead_id = (await _lead(sessions, email)).id

    listed = await eventually(
        lambda: api.get("/v1/inbound", params={"status": "processed"}, headers=admin),
        lambda r: any(m["lead_id"] == lead_id for m in r.json()),
    )

    [entry] = [m for m in listed.json() if m["lead_id"] == lead_id]
    assert entry["kind"] == "bounce" and "raw" not in entry
    assert entry["details"]["statuses"][0]["status"] == "5.1.1"
    assert (await api.get("/v1/inbound")).status_code == 403  # a marketing key


async def test_a_persons_reply_becomes_an_email_reply_event_of_the_lead(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    email = new_email("reply")
    return_path = await _sent_to(settings, sessions, email)
    lead_id = (await _lead(sessions, email)).id
    reply = (
        f"From: Margaret <{email}>\r\nTo: {return_path}\r\nSubject: Re: Welcome\r\n"
        f"Message-ID: <{uuid.uuid4()}@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nThanks, that sounds interesting.\r\n"
    ).encode()

    await _deliver(listener, return_path, reply)

    async def replies() -> list[str]:
        async with sessions() as session:
            rows = await session.execute(
                select(EngagementEvent.type).where(
                    EngagementEvent.lead_id == lead_id, EngagementEvent.type == "email_reply"
                )
            )
            return list(rows.scalars())

    assert await eventually(replies, bool) == ["email_reply"]
