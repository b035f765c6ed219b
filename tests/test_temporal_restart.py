"""The Temporal server stopped and restarted (state in a database file) while journeys
sleep on timers: every timer still fires, once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from journeys.dsl import End, SendEmail, Wait
from journeys.validation import define_journey
from starter.dev.provisioning.temporal import register_search_attributes, start_dev_server
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.services.enrollment import start_journey
from starter.settings import Settings
from starter.temporal_client import connect
from starter.worker_wiring import build_worker
from tests.conftest import new_email
from tests.lifecycle_helpers import create_confirmed_lead, eventually
from workflows import search_attributes
from workflows.contracts import journey_workflow_id

JOURNEYS = 20


async def timer_started(client: Client, workflow_id: str) -> bool:
    events = client.get_workflow_handle(workflow_id).fetch_history_events()
    return any([e.event_type == EventType.EVENT_TYPE_TIMER_STARTED async for e in events])


TIMER = timedelta(seconds=8)


async def test_timers_pending_while_the_server_is_down_all_fire_once_after_its_restart(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    database = tmp_path / "temporal.db"
    server = await start_dev_server(port=port, database_file=database)
    await register_search_attributes(server.client, "default", search_attributes.ALL)
    client = await connect(f"127.0.0.1:{port}", "default")
    definition = define_journey(
        name="timer-restart",
        entry="hello",
        steps=(
            SendEmail(id="hello", template="welcome", next="sleep"),
            Wait(id="sleep", duration=TIMER, next="again"),
            SendEmail(id="again", template="welcome_next_step", next="done"),
            End(id="done"),
        ),
    )
    emails = [new_email("timer") for _ in range(JOURNEYS)]
    worker = build_worker(client, settings.model_copy(update={"temporal_address": None}), sessions)
    running = asyncio.create_task(worker.run())
    workflow_ids: list[str] = []
    try:
        for email in emails:
            lead_id = await create_confirmed_lead(sessions, {"email": email})
            await start_journey(
                client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                definition=definition, lifecycle=None, effect_timeout_seconds=5,
            )  # fmt: skip
            workflow_ids.append(journey_workflow_id(definition.name, lead_id))
        for workflow_id in workflow_ids:  # first email sent and its timer started
            await eventually(lambda w=workflow_id: timer_started(client, w), bool, within=30)

        await server.shutdown()  # the server goes away with 20 timers pending …
        await asyncio.sleep(TIMER.total_seconds() + 2)  # … which fall due while it is down
        server = await start_dev_server(port=port, database_file=database)

        for email in emails:
            await smtp.wait_for(email, 2, within=90)
        await asyncio.sleep(1)
    finally:
        await worker.shutdown()
        await running
        await server.shutdown()

    assert [len(smtp.to(email)) for email in emails] == [2] * JOURNEYS
