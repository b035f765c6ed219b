"""A worker killed after the SMTP server accepted a message, before the activity completed:
the step's email still arrives exactly once.

The SMTP server here takes the message and then holds its "250" reply; while it holds, the
test SIGKILLs the worker process and starts another, which retries the activity.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import OutboxEmail
from journeys.registry import get_journey
from starter.dev.smtp_sink import free_port
from starter.services.enrollment import start_journey
from starter.settings import Settings
from tests.lifecycle_helpers import create_confirmed_lead, decider, eventually
from tests.test_handover_crash import start_worker
from workflows.contracts import PROGRESS_QUERY, JourneyProgress


class SlowToAnswerSink:
    """Accepts every message, but answers the first one only after `release` is set."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.first_received = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(message_from_bytes(content, policy=policy.default))
        if len(self.messages) == 1:
            self.first_received.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 Message accepted for delivery"


@pytest.fixture
def slow_sink() -> Iterator[tuple[SlowToAnswerSink, int]]:
    sink = SlowToAnswerSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    sink.release.set()
    controller.stop()


async def test_a_worker_killed_after_smtp_acceptance_sends_the_step_once(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    slow_sink: tuple[SlowToAnswerSink, int],
) -> None:
    sink, port = slow_sink
    smtp_settings = settings.model_copy(update={"smtp_port": port})
    lead_id = await create_confirmed_lead(sessions, decider())
    first = await start_worker(smtp_settings, "http://127.0.0.1:9/unused")
    enrollment = await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=lead_id,
        definition=get_journey("welcome"),
        lifecycle=None,
        effect_timeout_seconds=3,
    )

    received = await asyncio.get_running_loop().run_in_executor(None, sink.first_received.wait, 30)
    assert received
    first.kill()  # the server has the message; the worker dies before it hears "250"
    await first.wait()
    sink.release.set()
    second = await start_worker(smtp_settings, "http://127.0.0.1:9/unused")
    try:

        async def outbox() -> list[OutboxEmail]:
            async with sessions() as session:
                query = select(OutboxEmail).where(OutboxEmail.lead_id == lead_id)
                return list((await session.execute(query)).scalars().all())

        [row] = await eventually(outbox, lambda rows: len(rows) == 1 and rows[0].status == "sent")
        handle = temporal_client.get_workflow_handle(enrollment.workflow_id)

        async def progress() -> JourneyProgress:
            return await handle.query(PROGRESS_QUERY, result_type=JourneyProgress)

        # The retried attempt completes (it found the row sent) and the journey moves on.
        await eventually(progress, lambda p: p.emails_sent == ["welcome"], within=60)
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in (await handle.fetch_history()).events
            if e.HasField("activity_task_started_event_attributes")
        ]
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), 60)

    welcome = [m for m in sink.messages if m["Message-ID"] == row.message_id]
    assert len(welcome) == 1
    assert len(sink.messages) == 1
    assert max(attempts) >= 2  # the send really was retried
