"""Events taken in by the API: stored before the answer (many requests to one commit),
signalled to the workflows after it, and swept up if a process died in between."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import EngagementEvent
from starter.dev.smtp_sink import SmtpSink
from starter.services.event_intake import EventIntake
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually, lead_row
from tests.test_email_consent import enroll, link, local


async def _stored(sessions: async_sessionmaker, lead_id: str) -> list[EngagementEvent]:
    async with sessions() as session:
        query = select(EngagementEvent).where(EngagementEvent.lead_id == lead_id)
        return list((await session.execute(query)).scalars())


async def test_events_posted_at_once_are_each_stored_once_and_all_reach_the_workflows(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, new_email("burst"))
    ids = [f"burst-{n}" for n in range(40)]

    answers = await asyncio.gather(*(
        api.post("/v1/events", json={"lead_id": lead_id, "type": "page_view", "event_id": i})
        for i in [*ids, *ids[:10]]  # ten of them twice, in the same burst
    ))  # fmt: skip

    assert {a.status_code for a in answers} == {202}
    assert sorted(a.json()["event_id"] for a in answers if not a.json()["duplicate"]) == sorted(ids)
    stored = await eventually(
        lambda: _stored(sessions, lead_id),
        lambda rows: len(rows) == 40 and all(r.signalled_at for r in rows),
    )
    assert sorted(r.event_id for r in stored) == sorted(ids)
    await eventually(lambda: lead_row(sessions, lead_id), lambda lead: lead.behaviour_score > 0)


async def test_an_unknown_lead_in_a_burst_is_refused_and_the_others_are_stored(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, new_email("mixed"))
    nobody = str(uuid.uuid4())

    good, bad = await asyncio.gather(
        api.post("/v1/events", json={"lead_id": lead_id, "type": "download", "event_id": "m-1"}),
        api.post("/v1/events", json={"lead_id": nobody, "type": "download", "event_id": "m-2"}),
    )

    assert good.status_code == 202
    assert bad.status_code == 404 and "lead_id" in bad.text
    assert [r.event_id for r in await _stored(sessions, lead_id)] == ["m-1"]


async def test_an_event_stored_but_never_signalled_is_delivered_by_the_sweep(
    api: httpx.AsyncClient,
    worker: Worker,
    smtp: SmtpSink,
    sessions: async_sessionmaker,
    temporal_client: Client,
    settings: Settings,
) -> None:
    lead_id = await enroll(api, new_email("swept"))
    async with sessions() as session:  # what an API process that died after the commit leaves
        session.add(EngagementEvent(
            lead_id=lead_id, event_id="orphan-1", type="webinar_attended",
            occurred_at=datetime.now(UTC), received_at=datetime.now(UTC) - timedelta(minutes=5),
        ))  # fmt: skip
        await session.commit()
    intake = EventIntake(
        temporal_client, sessions, LeadLifecycle(temporal_client, settings.task_queue)
    )
    intake.start()  # its re-marker marks a row a rescore held at the first try
    try:
        swept = await intake.sweep()

        assert swept >= 1
        await eventually(
            lambda: _stored(sessions, lead_id), lambda rows: rows[0].signalled_at is not None
        )
        await eventually(lambda: lead_row(sessions, lead_id), lambda lead: lead.behaviour_score > 0)
    finally:
        await intake.close()


async def test_a_click_is_stored_when_its_redirect_answers(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email("clicker")
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)

    redirect = await api.get(local(link(welcome, "/t/c/")))

    assert redirect.status_code == 302
    assert [r.type for r in await _stored(sessions, lead_id)] == ["email_click"]
