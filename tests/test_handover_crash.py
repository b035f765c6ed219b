"""A worker killed in the middle of a CRM handover: the lead is still handed over once.

The worker runs as a real process (`python worker.py`) with the webhook CRM adapter. The
CRM receiver holds the first delivery open; the test SIGKILLs the worker right then and
starts a new one, which retries the activity once its attempt times out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import EngagementEvent, utcnow
from starter.dev.smtp_sink import SmtpSink
from starter.services.crm_signatures import SIGNATURE_HEADER, verify
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from tests.http_servers import serving
from tests.lifecycle_helpers import (
    create_confirmed_lead,
    decider,
    eventually,
    handovers_of,
    lead_row,
)
from workflows.contracts import LeadNudge

ROOT = Path(__file__).resolve().parent.parent
SECRET = "crash-test-secret-0123456789"


@dataclass
class CrmReceiver:
    """A CRM that records deliveries; it leaves the first one hanging."""

    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    first_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            self.deliveries.append((dict(request.headers), await request.body()))
            if len(self.deliveries) == 1:
                self.first_arrived.set()
                await asyncio.sleep(3600)  # the worker dies while we "process" it
            return Response(status_code=201)

        return app


@pytest.fixture
async def crm() -> AsyncIterator[tuple[CrmReceiver, str]]:
    receiver = CrmReceiver()
    async with serving(receiver.app()) as url:
        yield receiver, f"{url}/crm"


async def start_worker(
    settings: Settings, crm_url: str, **extra_env: str
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "NURTURE_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "CRM_ADAPTER": "webhook",
        "CRM_WEBHOOK_URL": crm_url,
        "CRM_WEBHOOK_SECRET": SECRET,
        "NURTURE_SECRET_KEY": settings.require_secret_key(),
        "NURTURE_QUIET_HOURS": "",
        "NURTURE_FREQUENCY_CAP": "",
        **extra_env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = b""
    while b"worker on" not in output:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, output.decode()
        output += line
    # Keep reading its log: a full pipe would block the worker mid-journey.
    drain = asyncio.get_running_loop().create_task(process.stdout.read())
    _DRAINS.add(drain)
    drain.add_done_callback(_DRAINS.discard)
    return process


_DRAINS: set[asyncio.Task[bytes]] = set()


async def test_a_worker_killed_during_the_handover_still_hands_over_exactly_once(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
    crm: tuple[CrmReceiver, str],
) -> None:
    receiver, crm_url = crm
    lead = decider()
    lead_id = await create_confirmed_lead(sessions, lead)
    async with sessions() as session:
        session.add(
            EngagementEvent(
                lead_id=lead_id, event_id="demo", type="demo_request", occurred_at=utcnow()
            )
        )
        await session.commit()
    first = await start_worker(settings, crm_url)
    lifecycle = LeadLifecycle(temporal_client, settings.task_queue, effect_timeout_seconds=3)
    await lifecycle.nudge(lead_id, LeadNudge(cause="event demo_request"))

    await asyncio.wait_for(receiver.first_arrived.wait(), 30)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    second = await start_worker(settings, crm_url)
    try:
        [handover] = await eventually(
            lambda: handovers_of(sessions, lead_id),
            lambda rows: len(rows) == 1 and rows[0].delivered_at is not None,
            within=60,
        )
        # This lead's notice: other tests' leads notify kim too.
        notices = await eventually(
            lambda: _kim_notices(smtp),
            lambda mails: any(str(lead["first_name"]) in m["Subject"] for m in mails),
            within=30,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)

    assert len(receiver.deliveries) == 2  # the hung one, then the retry
    keys = {headers["idempotency-key"] for headers, _ in receiver.deliveries}
    assert keys == {handover.idempotency_key}
    for headers, body in receiver.deliveries:
        verify(body, headers[SIGNATURE_HEADER.lower()], SECRET.encode())
    assert len(await handovers_of(sessions, lead_id)) == 1
    assert (await lead_row(sessions, lead_id)).lifecycle_stage == "mql"
    assignments = [m for m in notices if m["Subject"].startswith("New MQL")]
    assert len([m for m in assignments if str(lead["first_name"]) in m["Subject"]]) == 1


async def _kim_notices(smtp: SmtpSink) -> list:
    return smtp.to("kim@sales.nurture.example")
