"""The inbound path under SIGKILL (issue 16): `nurture inbound` killed in the middle of a
burst of bounces and replies, then the worker processing them; the senders retry what got
no 250, as MTAs do. Every message ends up stored once and processed exactly once: one
suppression per bounced lead, one `email_reply` event per reply."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections import Counter
from pathlib import Path

import aiosmtplib
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from db.models import ConsentRecord, EngagementEvent, InboundMessage
from starter.dev.smtp_sink import free_port
from starter.settings import Settings
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from tests.test_handover_crash import start_worker
from tests.test_inbound import BOUNCE_DOMAIN, _lead, _report, _sent_to

BOUNCES = 15
REPLIES = 15
NURTURE = Path(sys.executable).with_name("nurture")


async def _start_listener(settings: Settings, port: int) -> asyncio.subprocess.Process:
    env = {
        "PATH": "/usr/bin:/bin",
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "NURTURE_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "NURTURE_SECRET_KEY": settings.require_secret_key(),
        "NURTURE_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
    }
    process = await asyncio.create_subprocess_exec(
        str(NURTURE), "inbound", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return process
    raise AssertionError("nurture inbound did not start listening")


async def _deliver_until_accepted(port: int, return_path: str, raw: bytes) -> None:
    """As an MTA does: a message without a 250 is tried again until one comes."""
    for _ in range(600):
        try:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5) as client:
                await client.sendmail("", [return_path], raw)
            return
        except (aiosmtplib.SMTPException, OSError):
            await asyncio.sleep(0.1)
    raise AssertionError("never accepted")


PROCESSED = InboundMessage.status == "processed"
BOUNCED = ConsentRecord.action == "bounced"
REPLY = EngagementEvent.type == "email_reply"


async def _per_lead(
    sessions: async_sessionmaker,
    lead_id: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
    leads: list[str],
    *where: ColumnElement[bool],
) -> dict[str, int]:
    """How many rows each of `leads` has in `lead_id`'s table (matching `where`)."""
    async with sessions() as session:
        rows = await session.execute(select(lead_id).where(lead_id.in_(leads), *where))
        found = Counter(str(lead) for lead in rows.scalars())
    return {lead: found[lead] for lead in leads}


def _reply(email: str, return_path: str) -> bytes:
    return (
        f"From: <{email}>\r\nTo: {return_path}\r\nSubject: Re: Welcome\r\n"
        f"Message-ID: <{uuid.uuid4()}@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nSounds good, call me.\r\n"
    ).encode()


async def test_killing_the_listener_and_the_worker_mid_burst_processes_each_message_once(
    settings: Settings, sessions: async_sessionmaker
) -> None:
    bounced = [new_email("killed-bounce") for _ in range(BOUNCES)]
    replying = [new_email("killed-reply") for _ in range(REPLIES)]
    paths = {email: await _sent_to(settings, sessions, email) for email in bounced + replying}
    messages = [(paths[e], _report("postfix_bounce.eml", paths[e])) for e in bounced] + [
        (paths[e], _reply(e, paths[e])) for e in replying
    ]
    port = free_port()
    worker = await start_worker(settings, "http://127.0.0.1:9/crm")
    listener = await _start_listener(settings, port)

    deliveries = [
        asyncio.create_task(_deliver_until_accepted(port, path, raw)) for path, raw in messages
    ]
    await asyncio.sleep(0.3)
    listener.send_signal(signal.SIGKILL)  # mid-burst: some stored, some refused, some retried
    await listener.wait()
    await asyncio.sleep(0.5)
    worker.send_signal(signal.SIGKILL)  # and whatever it was processing
    await worker.wait()
    listener = await _start_listener(settings, port)
    worker = await start_worker(settings, "http://127.0.0.1:9/crm")
    try:
        await asyncio.gather(*deliveries)
        lead_of = {email: (await _lead(sessions, email)).id for email in bounced + replying}
        every, bouncing = list(lead_of.values()), [lead_of[e] for e in bounced]
        answering = [lead_of[e] for e in replying]

        await eventually(
            lambda: _per_lead(sessions, InboundMessage.lead_id, every, PROCESSED),
            lambda done: set(done.values()) == {1},
            within=90,
        )

        assert set((await _per_lead(sessions, InboundMessage.lead_id, every)).values()) == {1}
        assert set(
            (await _per_lead(sessions, ConsentRecord.lead_id, bouncing, BOUNCED)).values()
        ) == {1}
        assert set(
            (await _per_lead(sessions, EngagementEvent.lead_id, answering, REPLY)).values()
        ) == {1}
    finally:
        for process in (listener, worker):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
