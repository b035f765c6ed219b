"""200 journeys while the worker process is SIGKILLed and restarted again and again, some
kills landing between the SMTP server's acceptance of a message and the activity's
completion: every journey finishes, each (lead, step) email arrives exactly once, each
MQL is handed to the CRM exactly once.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import CrmHandover, EngagementEvent, OutboxEmail, utcnow
from journeys.dsl import End, SendEmail, Wait
from journeys.validation import define_journey
from starter.dev.smtp_sink import free_port
from starter.services.enrollment import start_journey
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from tests.conftest import new_email
from tests.http_servers import serving
from tests.lifecycle_helpers import (
    completed_workflows,
    create_confirmed_lead,
    decider,
    eventually,
)
from tests.test_handover_crash import start_worker
from workflows.contracts import journey_workflow_id

JOURNEYS = 200
QUALIFIED = 40  # of them deciders with a demo request: MQLs, handed to the CRM
KILLS = 6
EFFECT_TIMEOUT = 3
JOURNEY = define_journey(
    name="kill-test",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="sleep"),
        Wait(id="sleep", duration=timedelta(seconds=2), next="again"),
        SendEmail(id="again", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


class HoldingSink:
    """An SMTP server that keeps every message; when armed, it holds the "250" for the
    next message it accepts until released (the worker is killed meanwhile)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self._lock:
            self.messages.append(message_from_bytes(content, policy=policy.default))
            hold = self.armed.is_set()
            self.armed.clear()
        if hold:
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def holding_sink() -> Iterator[tuple[HoldingSink, int]]:
    sink = HoldingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    sink.release.set()
    controller.stop()


@dataclass
class CountingCrm:
    """A CRM that records each delivery's idempotency key and accepts it."""

    keys: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            self.keys.append(request.headers.get("idempotency-key", ""))
            return Response(status_code=201)

        return app


@pytest.fixture
async def counting_crm() -> AsyncIterator[tuple[CountingCrm, str]]:
    crm = CountingCrm()
    async with serving(crm.app()) as url:
        yield crm, f"{url}/crm"


async def _create_leads(sessions: async_sessionmaker) -> tuple[list[str], list[str], list[str]]:
    """(lead ids, their emails, the qualified ones' ids): deciders with a demo request
    first, then plain leads."""
    ids, emails, qualified = [], [], []
    for number in range(JOURNEYS):
        lead: dict[str, object] = decider() if number < QUALIFIED else {"email": new_email("kill")}
        lead_id = await create_confirmed_lead(sessions, lead)
        if number < QUALIFIED:
            async with sessions() as session:
                session.add(EngagementEvent(
                    lead_id=lead_id, event_id="demo", type="demo_request", occurred_at=utcnow()
                ))  # fmt: skip
                await session.commit()
            qualified.append(lead_id)
        ids.append(lead_id)
        emails.append(str(lead["email"]))
    return ids, emails, qualified


async def lead_handovers(sessions: async_sessionmaker, lead_ids: list[str]) -> list[CrmHandover]:
    """The CRM handovers of these leads."""
    async with sessions() as session:
        query = select(CrmHandover).where(
            CrmHandover.lead_id.in_(lead_ids), CrmHandover.kind == "lead"
        )
        return list((await session.execute(query)).scalars().all())


async def finished_and_handed_over(
    client: Client, sessions: async_sessionmaker, lead_ids: list[str], *, within: float
) -> None:
    """Wait until every lead's JOURNEY completed and every qualified lead reached the CRM,
    then leave room for a duplicate, were there one."""
    workflow_ids = [journey_workflow_id(JOURNEY.name, lead_id) for lead_id in lead_ids]
    await eventually(
        lambda: completed_workflows(client, workflow_ids),
        lambda done: done == JOURNEYS,
        within=within,
    )
    await eventually(
        lambda: lead_handovers(sessions, lead_ids),
        lambda rows: len({r.lead_id for r in rows if r.delivered_at is not None}) == QUALIFIED,
        within=120,
    )
    await asyncio.sleep(2)


async def test_two_hundred_journeys_survive_repeated_worker_kills_without_a_duplicate(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    holding_sink: tuple[HoldingSink, int],
    counting_crm: tuple[CountingCrm, str],
) -> None:
    sink, smtp_port = holding_sink
    crm, crm_url = counting_crm
    worker_settings = settings.model_copy(update={"smtp_port": smtp_port})
    lead_ids, emails, qualified = await _create_leads(sessions)
    lifecycle = LeadLifecycle(temporal_client, settings.task_queue, EFFECT_TIMEOUT)
    extra_env = {"NURTURE_EFFECT_TIMEOUT": str(EFFECT_TIMEOUT)}
    worker = await start_worker(worker_settings, crm_url, **extra_env)
    chaos = random.Random(7)
    try:
        for lead_id in lead_ids:
            await start_journey(
                temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                definition=JOURNEY, lifecycle=lifecycle, effect_timeout_seconds=EFFECT_TIMEOUT,
            )  # fmt: skip
        for kill in range(KILLS):
            if kill % 2 == 0:
                # Between acceptance and completion: the server has the message, the
                # worker dies before it hears "250".
                sink.release.clear()
                sink.armed.set()
                held = await asyncio.to_thread(sink.holding.wait, 20)
                assert held, "no message was sent while armed"
                sink.holding.clear()
            else:
                await asyncio.sleep(chaos.uniform(0.5, 3.0))
            worker.kill()
            await worker.wait()
            sink.release.set()
            worker = await start_worker(worker_settings, crm_url, **extra_env)

        await finished_and_handed_over(temporal_client, sessions, lead_ids, within=240)
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 60)

    async with sessions() as session:
        query = select(OutboxEmail.lead_id, OutboxEmail.step_id, OutboxEmail.message_id).where(
            OutboxEmail.lead_id.in_(lead_ids),
            OutboxEmail.workflow_id.like(journey_workflow_id(JOURNEY.name, "%")),
        )
        outbox = (await session.execute(query)).all()
    per_step = Counter((lead, step) for lead, step, _ in outbox)
    assert set(per_step) == {(lead, step) for lead in lead_ids for step in ("hello", "again")}
    assert set(per_step.values()) == {1}
    received = Counter(m["Message-ID"] for email in emails for m in sink.to(email))
    lost = [(lead, step) for lead, step, message_id in outbox if message_id not in received]
    assert not lost, f"recorded in the outbox, never received: {lost}"
    assert sum(received.values()) == 2 * JOURNEYS  # nothing else, nothing twice
    assert set(received) == {message_id for _, _, message_id in outbox}

    rows = await lead_handovers(sessions, lead_ids)
    assert Counter(r.lead_id for r in rows) == Counter(qualified)
    # A retried delivery repeats its handover's key (the CRM deduplicates on it): the
    # CRM saw exactly the handovers' keys, one per MQL.
    assert set(crm.keys) == {r.idempotency_key for r in rows}
