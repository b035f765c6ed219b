"""Hearing back from the mail world, the sending half (issue 16): each message's own return
path (VERP) and DKIM signatures, against the real PostgreSQL outbox and SMTP sink."""

from __future__ import annotations

import uuid
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.dkim_signing import DkimSigner, public_key_record
from activities.email import EmailActivities
from db.models import OutboxEmail
from starter.dev.smtp_sink import SmtpSink
from starter.services.link_tokens import LinkTokens, TokenInvalid
from starter.settings import Settings
from tests.conftest import new_email
from tests.test_email_activity import make_lead, request

KEY_FILE = Path(__file__).with_name("data") / "dkim_test_key.pem"  # a test key, nothing else
TOKENS = LinkTokens("s" * 40)


def _dns(key_file: Path) -> dict[bytes, bytes]:
    record = public_key_record(key_file.read_bytes())
    return {b"s1._domainkey.mail.example.": record.encode()}


def test_a_return_path_names_its_outbox_row() -> None:
    address = TOKENS.return_path(4711, "bounces.example.com")

    assert address.startswith("bounce+4711-") and len(address.partition("@")[0]) <= 64
    assert TOKENS.read_return_path(address) == 4711
    assert TOKENS.read_return_path(f"<{address.upper()}>") == 4711  # MTAs may change case


def test_a_forged_return_path_names_nothing() -> None:
    genuine = TOKENS.return_path(4711, "bounces.example.com")
    other_row = genuine.replace("bounce+4711-", "bounce+4712-")

    for forged in (other_row, "bounce+4711-aaaaaaaaaaaaaaaa@x", "postmaster@x", "bounce+@x"):
        with pytest.raises(TokenInvalid):
            TOKENS.read_return_path(forged)
    with pytest.raises(TokenInvalid):
        LinkTokens("t" * 40).read_return_path(genuine)  # another key


def test_a_signed_message_verifies_against_the_published_record() -> None:
    signer = DkimSigner("mail.example", "s1", KEY_FILE.read_bytes())
    message = (
        b"From: News <news@mail.example>\r\nTo: ada@example.com\r\nSubject: Hello\r\n"
        b"Message-ID: <1@mail.example>\r\n\r\nHi Ada.\r\n"
    )
    records = _dns(KEY_FILE)

    signed = signer.sign(message)

    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: records.get(name))
    tampered = signed.replace(b"Hi Ada.", b"Hi Bob.")
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: records.get(name))


async def test_a_sent_message_carries_its_return_path_and_a_valid_signature(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    configured = settings.model_copy(
        update={
            "bounce_domain": "bounces.mail.example",
            "dkim_domain": "mail.example",
            "dkim_selector": "s1",
            "dkim_private_key_file": KEY_FILE,
        }
    )
    email = new_email("verp")
    lead_id = await make_lead(sessions, email)
    key = f"test/{uuid.uuid4()}"

    result = await ActivityEnvironment().run(
        EmailActivities(configured, sessions).send_email, request(lead_id, key)
    )

    assert result.status == "sent"
    await smtp.wait_for(email, 1)
    [sender] = smtp.senders_to(email)
    [raw] = smtp.raw_to(email)
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    assert LinkTokens(settings.require_secret_key()).read_return_path(sender) == outbox_id
    assert sender.endswith("@bounces.mail.example")
    records = _dns(KEY_FILE)
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: records.get(name))
