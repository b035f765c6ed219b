"""A handover reaches the CRM once, however many attempts deliver it at the same time; and
a CRM that answers the handover with feedback at once is heard."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from activities.contracts import HandOverAccountRequest
from activities.crm import CrmActivities
from db.models import EngagementEvent, Lead, utcnow
from journeys.dsl import LifecycleStage
from journeys.lifecycle import FeedbackOutcome
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from starter.worker_wiring import build_worker
from tests.conftest import CRM_SECRET
from tests.http_servers import serving
from tests.lifecycle_helpers import create_confirmed_lead, decider, eventually
from workflows.contracts import LeadNudge, SalesFeedback


class SlowCrm:
    """A CRM that takes half a second over every delivery and keeps each one."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            self.keys.append(request.headers["Idempotency-Key"])
            await asyncio.sleep(0.5)
            return Response(status_code=201)

        return app


@pytest.fixture
async def slow_crm() -> AsyncIterator[tuple[SlowCrm, str]]:
    crm = SlowCrm()
    async with serving(crm.app()) as url:
        yield crm, f"{url}/crm"


async def test_two_contacts_qualifying_one_account_at_once_deliver_its_handover_once(
    settings: Settings, sessions: async_sessionmaker, slow_crm: tuple[SlowCrm, str]
) -> None:
    """Both contacts' lead workflows hand the account over with the same key; the second
    waits for the first's delivery and finds it done, instead of posting it again."""
    crm, url = slow_crm
    webhook = settings.model_copy(
        update={
            "crm_adapter": "webhook",
            "crm_webhook_url": url,
            "crm_webhook_secret": SecretStr(CRM_SECRET),
        }
    )
    domain = f"acme-{uuid.uuid4().hex[:8]}.example"
    leads = [await create_confirmed_lead(sessions, decider(domain)) for _ in range(2)]
    async with sessions() as session:
        lead = await session.get(Lead, leads[0])
    assert lead is not None and lead.account_id is not None
    account_id = lead.account_id
    activities = CrmActivities(webhook, sessions)
    key = f"account:{account_id}"

    results = await asyncio.gather(
        *(
            activities.hand_over_account(
                HandOverAccountRequest(account_id=account_id, lead_id=lead, idempotency_key=key)
            )
            for lead in leads
        )
    )

    assert crm.keys == [key]
    assert sorted(result.created for result in results) == [False, True]
    assert results[0].handover_id == results[1].handover_id


class AcceptingCrm:
    """A CRM whose automation accepts every lead it receives, before it answers the POST."""

    def __init__(self, lifecycle: LeadLifecycle) -> None:
        self.lifecycle = lifecycle

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            lead_id = (await request.json())["lead"]["id"]
            accepted = SalesFeedback(outcome=FeedbackOutcome.ACCEPT, actor="crm")
            await self.lifecycle.feedback_later(lead_id, accepted)
            return Response(status_code=201)

        return app


async def test_feedback_a_crm_sends_as_it_receives_the_lead_is_taken(
    temporal_client: Client, settings: Settings, sessions: async_sessionmaker
) -> None:
    """The CRM has the lead (and answers for it) before the workflow has heard back from
    the activity that made it MQL and handed it over: the acceptance waits for that and
    counts, instead of being judged against the stage before and ignored."""
    lifecycle = LeadLifecycle(temporal_client, settings.task_queue, effect_timeout_seconds=5)
    crm = AcceptingCrm(lifecycle)
    async with serving(crm.app()) as url:
        webhook = settings.model_copy(
            update={
                "crm_adapter": "webhook",
                "crm_webhook_url": f"{url}/crm",
                "crm_webhook_secret": SecretStr(CRM_SECRET),
            }
        )
        lead_id = await create_confirmed_lead(sessions, decider())
        async with sessions() as session:
            session.add(
                EngagementEvent(
                    lead_id=lead_id, event_id="demo", type="demo_request", occurred_at=utcnow()
                )
            )
            await session.commit()
        async with build_worker(temporal_client, webhook, sessions):
            await lifecycle.nudge(lead_id, LeadNudge(cause="event demo_request"))
            status = await eventually(
                lambda: lifecycle.status(lead_id),
                lambda status: status.stage == LifecycleStage.SAL,
                within=30,
            )

    assert not any("ignored" in entry.what for entry in status.timeline)
