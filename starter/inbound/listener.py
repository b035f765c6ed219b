"""`nurture inbound`: an SMTP listener for the bounce domain (its MX, or where a relay
forwards it). Every message is stored before the listener answers 250 — a database that
can't take it gets a 451 and the sender tries again — and then processed by a workflow of
its own; a message stored but not yet handed to Temporal (a crash in between) is picked up
when the listener starts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import InboundMessage
from db.writes import insert_once
from workflows.inbound_message import INBOUND_MESSAGE_WORKFLOW, inbound_workflow_id

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def message_key(raw: bytes) -> str:
    """Its Message-ID, or a digest of its content: a redelivery is the same key."""
    try:
        found = message_from_bytes(raw, policy=policy.default).get("Message-ID")
    except Exception:  # hostile input: the digest names it
        found = None
    text = " ".join(str(found).split()) if found else ""
    return text[:300] if text else "sha256:" + hashlib.sha256(raw).hexdigest()


class InboundHandler:
    """The aiosmtpd handler: accept mail for `domain` (any, when None), store, hand over."""

    def __init__(
        self, sessions: async_sessionmaker, client: Client, task_queue: str, domain: str | None
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue
        self._domain = domain.lower() if domain else None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._domain and not address.lower().endswith("@" + self._domain):
            return "550 5.1.1 Not a bounce address here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            inbound_id = await self._store(raw, envelope)
        except Exception:
            log.exception("inbound message not stored")
            return "451 4.3.0 Not stored; try again later"
        try:
            await self.start(inbound_id)
        except Exception:  # stored: picked up when the listener starts again
            log.exception("inbound %s stored, not yet processing", inbound_id)
        return "250 2.0.0 Stored"

    async def _store(self, raw: bytes, envelope: Envelope) -> int:
        key = message_key(raw)
        async with self._sessions() as session:
            await insert_once(
                session,
                InboundMessage(
                    message_key=key,
                    envelope_from=str(envelope.mail_from or "")[:320],
                    recipients=[str(r)[:320] for r in envelope.rcpt_tos][:50],
                    raw=raw,
                ),
            )
            found = await session.execute(
                select(InboundMessage.id).where(InboundMessage.message_key == key)
            )
            return int(found.scalar_one())

    async def start(self, inbound_id: int) -> None:
        """Hand the stored message to its workflow (once: the id is the row's)."""
        try:
            await self._client.start_workflow(
                INBOUND_MESSAGE_WORKFLOW,
                inbound_id,
                id=inbound_workflow_id(inbound_id),
                task_queue=self._task_queue,
            )
        except WorkflowAlreadyStartedError:
            pass

    async def recover(self) -> int:
        """Start the workflows of messages stored but never handed over; how many."""
        async with self._sessions() as session:
            waiting = list(
                (
                    await session.execute(
                        select(InboundMessage.id).where(InboundMessage.status == "received")
                    )
                ).scalars()
            )
        for inbound_id in waiting:
            await self.start(inbound_id)
        return len(waiting)


async def serve(handler: InboundHandler, host: str, port: int) -> asyncio.Server:
    """Listen on `host:port` in this event loop (no thread: the handler shares the loop's
    database engine and Temporal client)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
