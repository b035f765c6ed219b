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
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from starter.services.inbound import (
    Received,
    hand_over_waiting,
    start_processing,
    store_inbound,
)

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
        [inbound_id] = await store_inbound(
            self._sessions,
            [
                Received(
                    message_key=message_key(raw),
                    raw=raw,
                    envelope_from=str(envelope.mail_from or ""),
                    recipients=[str(r) for r in envelope.rcpt_tos],
                )
            ],
        )
        return inbound_id

    async def start(self, inbound_id: int) -> None:
        """Hand the stored message to its workflow (once: the id is the row's)."""
        await start_processing(self._client, self._task_queue, inbound_id)

    async def recover(self) -> int:
        """Start the workflows of messages stored but never handed over (whichever way
        they came: the webhooks' too); how many."""
        return await hand_over_waiting(self._sessions, self._client, self._task_queue)


async def serve(handler: InboundHandler, host: str, port: int) -> asyncio.Server:
    """Listen on `host:port` in this event loop (no thread: the handler shares the loop's
    database engine and Temporal client)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
