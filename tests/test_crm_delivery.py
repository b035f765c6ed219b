"""A handover reaches the CRM once, however many attempts deliver it at the same time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker

from activities.contracts import HandOverAccountRequest
from activities.crm import CrmActivities
from db.models import Lead
from starter.settings import Settings
from tests.conftest import CRM_SECRET
from tests.http_servers import serving
from tests.lifecycle_helpers import create_confirmed_lead, decider


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
        account_id = (await session.get(Lead, leads[0])).account_id  # type: ignore[union-attr]
    assert account_id is not None
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
