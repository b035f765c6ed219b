"""Broadcasts under faults, on the real stack (issue 15): the worker SIGKILLed again and
again mid-broadcast, an SMTP server saying "try later" to some recipients and "no such
user" to others, a lead opting out of the topic while the broadcast is going out. Counted
at the SMTP server: every recipient gets exactly one message, or none when it must not."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import (
    Broadcast,
    BroadcastRecipient,
    EmailLink,
    Lead,
    OutboxEmail,
    SegmentMembership,
    new_id,
)
from db.topic_subscriptions import set_choice
from journeys.topics import Frequency, TopicChoice
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.services.broadcasts import read_broadcast
from starter.settings import Settings
from starter.worker_wiring import build_worker
from tests.test_broadcasts import _audience, _spec, _start, _until
from tests.test_handover_crash import start_worker

KILLED_BROADCAST = 20_000
KILLS = 5


async def _bulk_audience(sessions: async_sessionmaker, size: int) -> tuple[str, list[str]]:
    """A segment of `size` confirmed leads inserted in bulk; its name and their addresses."""
    segment, ids = f"bulk-{uuid.uuid4().hex[:10]}", [new_id() for _ in range(size)]
    emails = [f"k-{i}@killed.example" for i in ids]
    async with sessions() as session:
        for start in range(0, size, 5000):
            chunk = range(start, min(start + 5000, size))
            await session.execute(
                insert(Lead),
                [{"id": ids[n], "email": emails[n], "consent_status": "confirmed"} for n in chunk],
            )
            await session.execute(
                insert(SegmentMembership), [{"lead_id": ids[n], "segment": segment} for n in chunk]
            )
        await session.commit()
    return segment, emails


async def _remove_bulk(sessions: async_sessionmaker, segment: str, broadcast_id: str) -> None:
    """The bulk audience's rows, gone again: the leads, their emails, links, memberships."""
    async with sessions() as session:
        members = select(SegmentMembership.lead_id).where(SegmentMembership.segment == segment)
        outbox = select(OutboxEmail.id).where(OutboxEmail.lead_id.in_(members))
        await session.execute(delete(EmailLink).where(EmailLink.outbox_id.in_(outbox)))
        await session.execute(delete(OutboxEmail).where(OutboxEmail.lead_id.in_(members)))
        await session.execute(
            delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast_id)
        )
        await session.execute(delete(Broadcast).where(Broadcast.id == broadcast_id))
        ids = list((await session.execute(members)).scalars())
        await session.execute(delete(SegmentMembership).where(SegmentMembership.segment == segment))
        for start in range(0, len(ids), 5000):
            await session.execute(delete(Lead).where(Lead.id.in_(ids[start : start + 5000])))
        await session.commit()


class CountingServer:
    """An SMTP server that only counts what it accepts, per recipient (parsing 20,000
    messages would make the test's own process the bottleneck)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            self.received[address] += 1
        return "250 OK"


async def test_a_broadcast_survives_repeated_worker_kills_and_sends_each_message_once(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    segment, emails = await _bulk_audience(sessions, KILLED_BROADCAST)
    counting = CountingServer()
    controller = Controller(counting, hostname="127.0.0.1", port=free_port())
    controller.start()
    sending = settings.model_copy(update={"smtp_port": controller.port})
    worker = await start_worker(sending, "http://127.0.0.1:9/crm")
    broadcast_id = await _start(sending, sessions, temporal_client, _spec(segment))
    try:
        for _ in range(KILLS):
            await asyncio.sleep(random.uniform(2.0, 5.0))
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            worker = await start_worker(sending, "http://127.0.0.1:9/crm")
        view = await _until(sessions, broadcast_id, lambda v: v.status == "done", within=900)
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        controller.stop()

    received = {address: counting.received[address] for address in emails}
    await _remove_bulk(sessions, segment, broadcast_id)  # 20,000 leads slow later reports
    assert view.counts.sent == KILLED_BROADCAST
    assert min(received.values()) == 1  # nobody missed
    assert max(received.values()) == 1  # nobody twice


class FlakyServer:
    """An SMTP server that answers 451 to some recipients until told to stop, and 550 to
    others always; it keeps what it accepts."""

    def __init__(self, deferred: set[str], unknown: set[str]) -> None:
        self.deferred, self.unknown = deferred, unknown
        self.flaky = threading.Event()
        self.flaky.set()
        self.received: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address in self.deferred and self.flaky.is_set():
            self.refusals[address] += 1
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            self.received[address] += 1
        return "250 OK"


@pytest.fixture
def flaky_server() -> Iterator[tuple[FlakyServer, int]]:
    server = FlakyServer(set(), set())
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield server, controller.port
    controller.stop()


async def test_try_later_is_retried_and_delivered_once_and_no_such_user_suppresses(
    settings: Settings,
    sessions: async_sessionmaker,
    temporal_client: Client,
    flaky_server: tuple[FlakyServer, int],
) -> None:
    server, port = flaky_server
    segment, ids, emails = await _audience(sessions, 30)
    server.deferred = set(emails[:3])  # 10 %
    server.unknown = {emails[3]}
    fast = settings.model_copy(update={"smtp_port": port, "broadcast_retry_seconds": 0.5})
    async with build_worker(temporal_client, fast, sessions):
        broadcast_id = await _start(fast, sessions, temporal_client, _spec(segment))
        await _until(sessions, broadcast_id, lambda v: v.counts.deferred >= 3)
        server.flaky.clear()  # the server accepts again

        view = await _until(sessions, broadcast_id, lambda v: v.status == "done")

    assert view.counts.sent == 29 and view.counts.bounced == 1
    assert all(server.received[e] == 1 for e in emails if e != emails[3])
    assert all(server.refusals[e] >= 1 for e in emails[:3])
    async with sessions() as session:
        bounced = await session.get(Lead, ids[3])
        assert bounced is not None and bounced.consent_status == "bounced"


async def test_a_lead_who_leaves_the_topic_mid_broadcast_gets_nothing_from_then_on(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client, worker: Worker,
    smtp: SmtpSink,
) -> None:  # fmt: skip
    segment, ids, emails = await _audience(sessions, 20)
    broadcast_id = await _start(
        settings, sessions, temporal_client, _spec(segment, rate_per_second=4.0)
    )
    view = await _until(sessions, broadcast_id, lambda v: v.counts.sent >= 2)
    sent_already = {e for e in emails if smtp.to(e)}
    leaving = [i for i, e in zip(ids, emails, strict=True) if e not in sent_already][-3:]
    async with sessions() as session:
        for lead_id in leaving:
            await set_choice(
                session, lead_id, "newsletter", TopicChoice(False, Frequency.ANY),
                source="preference page", at=datetime.now(UTC),
            )  # fmt: skip
        await session.commit()

    view = await _until(sessions, broadcast_id, lambda v: v.status == "done")

    assert view.counts.skipped == {"topic_unsubscribed": 3}
    assert view.counts.sent == 17
    left = {e for i, e in zip(ids, emails, strict=True) if i in leaving}
    assert all(smtp.to(e) == [] for e in left)
    assert (await read_broadcast(sessions, broadcast_id)).counts.pending == 0


class RefusingServer(FlakyServer):
    """Refuses some messages after their data (a content filter), not their address."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__(set(), set())
        self.refused = refused

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(address in self.refused for address in envelope.rcpt_tos):
            return "554 5.7.1 Message rejected: content policy"
        return await super().handle_DATA(server, session, envelope)


async def test_a_refused_message_fails_without_suppressing_the_address(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    segment, ids, emails = await _audience(sessions, 5)
    server = RefusingServer({emails[0]})
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    sending = settings.model_copy(update={"smtp_port": controller.port})
    try:
        async with build_worker(temporal_client, sending, sessions):
            broadcast_id = await _start(sending, sessions, temporal_client, _spec(segment))
            view = await _until(sessions, broadcast_id, lambda v: v.status == "done")
    finally:
        controller.stop()

    assert view.counts.failed == 1 and view.counts.sent == 4 and view.counts.bounced == 0
    async with sessions() as session:
        refused = await session.get(Lead, ids[0])
        assert refused is not None and refused.consent_status == "confirmed"


async def test_an_address_smtp_cannot_carry_fails_and_the_broadcast_finishes(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client, worker: Worker,
    smtp: SmtpSink,
) -> None:  # fmt: skip
    segment, ids, emails = await _audience(sessions, 3)
    async with sessions() as session:  # stored before the API refused such addresses
        lead = await session.get(Lead, ids[0])
        assert lead is not None
        lead.email = f"jörg-{uuid.uuid4().hex[:6]}@example.com"
        await session.commit()

    broadcast_id = await _start(settings, sessions, temporal_client, _spec(segment))

    view = await _until(sessions, broadcast_id, lambda v: v.status == "done")
    assert view.counts.failed == 1 and view.counts.sent == 2
    await smtp.wait_for(emails[1], 1)
