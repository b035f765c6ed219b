"""Outages of the things Nurture talks to: sends and handovers wait them out, then happen
once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import EngagementEvent, OutboxEmail, utcnow
from starter.dev.smtp_sink import SmtpSink, free_port, start_sink
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from starter.worker_wiring import build_worker
from tests.conftest import new_email
from tests.http_servers import serving
from tests.lifecycle_helpers import create_confirmed_lead, decider, eventually, handovers_of
from tests.test_email_consent import CONFIRMED
from workflows.contracts import LeadNudge

SECRET = "outage-test-secret-0123456789"


async def outbox_of(sessions: async_sessionmaker, lead_id: str) -> list[OutboxEmail]:
    async with sessions() as session:
        query = select(OutboxEmail).where(OutboxEmail.lead_id == lead_id)
        return list((await session.execute(query)).scalars())


async def test_a_send_during_an_smtp_outage_is_delivered_once_the_server_is_back(
    api: httpx.AsyncClient, temporal_client: Client, settings: Settings,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    port = free_port()  # nothing listens here yet: the SMTP server is down
    down = settings.model_copy(update={"smtp_port": port})
    email = new_email("outage")
    async with build_worker(temporal_client, down, sessions):
        response = await api.post(
            "/v1/enrollments",
            json={"journey": "welcome", "lead": {"email": email}, "consent": CONFIRMED},
        )
        lead_id = response.json()["lead_id"]
        await asyncio.sleep(4)  # a few failed attempts
        assert all(row.status != "sent" for row in await outbox_of(sessions, lead_id))

        controller, sink = start_sink(port=port)  # the server comes back
        try:
            await sink.wait_for(email, 1, within=40)
            await asyncio.sleep(1)
        finally:
            controller.stop()

    assert len(sink.to(email)) == 1
    [row] = await outbox_of(sessions, lead_id)
    assert row.status == "sent"


@dataclass
class FlakyCrm:
    """A CRM that fails twice with 500, then hangs past the attempt timeout, then accepts."""

    answers: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            self.keys.append(request.headers["idempotency-key"])
            attempt = len(self.keys)
            if attempt <= 2:
                self.answers.append(500)
                return Response(status_code=500)
            if attempt == 3:
                self.answers.append(0)  # never answered
                await asyncio.sleep(3600)
            self.answers.append(201)
            return Response(status_code=201)

        return app


@pytest.fixture
async def flaky_crm() -> AsyncIterator[tuple[FlakyCrm, str]]:
    crm = FlakyCrm()
    async with serving(crm.app()) as url:
        yield crm, f"{url}/crm"


async def test_a_crm_answering_500s_and_timing_out_gets_the_lead_once(
    temporal_client: Client, settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink,
    flaky_crm: tuple[FlakyCrm, str],
) -> None:  # fmt: skip
    crm, url = flaky_crm
    webhook = settings.model_copy(
        update={
            "crm_adapter": "webhook",
            "crm_webhook_url": url,
            "crm_webhook_secret": SecretStr(SECRET),
            "effect_timeout_seconds": 3,
        }
    )
    lead = decider()
    lead_id = await create_confirmed_lead(sessions, lead)
    async with sessions() as session:
        demo = EngagementEvent(
            lead_id=lead_id, event_id="demo", type="demo_request", occurred_at=utcnow()
        )
        session.add(demo)
        await session.commit()

    async with build_worker(temporal_client, webhook, sessions):
        lifecycle = LeadLifecycle(temporal_client, settings.task_queue, effect_timeout_seconds=3)
        await lifecycle.nudge(lead_id, LeadNudge(cause="event demo_request"))
        [handover] = await eventually(
            lambda: handovers_of(sessions, lead_id),
            lambda rows: len(rows) == 1 and rows[0].delivered_at is not None,
            within=60,
        )

        async def notices_for_this_lead() -> list:
            return [
                m for m in smtp.to("kim@sales.nurture.example")
                if str(lead["first_name"]) in m["Subject"]
                and m["Subject"].startswith("New MQL")  # not the mql-alert journey's alert
            ]  # fmt: skip

        notices = await eventually(notices_for_this_lead, bool, within=30)
        await asyncio.sleep(1)  # room for a second notification, if there were one
        notices = await notices_for_this_lead()

    assert crm.answers[:3] == [500, 500, 0] and crm.answers.count(201) == 1
    assert set(crm.keys) == {handover.idempotency_key}
    assert len(await handovers_of(sessions, lead_id)) == 1
    assert len(notices) == 1
