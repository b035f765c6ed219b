"""Helpers for lifecycle tests: leads that will qualify, waiting on the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from db.models import CrmHandover, Lead

T = TypeVar("T")


def decider(domain: str | None = None, **extra: object) -> dict[str, object]:
    """A decision-maker in Germany (routed to Kim by territory) at a domain of its own.
    A unique first name finds this lead's notifications among everyone's."""
    token = uuid.uuid4().hex[:8]
    return {
        "email": f"dana-{token}@{domain or f'acme-{token}.example'}",
        "first_name": f"Dana{token}",
        "last_name": "Decider",
        "title": "VP Marketing",
        "company": "Acme",
        "company_size": 800,
        "industry": "software",
        "country": "DE",
        "persona": "decision-maker",
        **extra,
    }


async def create_confirmed_lead(sessions: async_sessionmaker, lead: dict[str, object]) -> str:
    """Create the lead as the API would, with confirmed marketing consent."""
    from starter.services.enrollment import LeadIn, upsert_lead

    async with sessions() as session:
        row, _ = await upsert_lead(session, LeadIn.model_validate(lead))
        row.consent_status = "confirmed"
        await session.commit()
        return row.id


async def eventually(
    # Called without arguments; `...` also takes a lambda binding a loop variable as a default.
    probe: Callable[..., Awaitable[T]],
    accept: Callable[[T], bool],
    within: float = 20.0,
) -> T:
    """Poll `probe` until `accept` says yes; fail with the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    value = await probe()
    while not accept(value):
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting; last value: {value!r}")
        await asyncio.sleep(0.1)
        value = await probe()
    return value


async def handovers_of(sessions: async_sessionmaker, lead_id: str) -> list[CrmHandover]:
    async with sessions() as session:
        query = (
            select(CrmHandover)
            .where(CrmHandover.lead_id == lead_id, CrmHandover.kind == "lead")
            .order_by(CrmHandover.id)
        )
        return list((await session.execute(query)).scalars().all())


async def lead_row(sessions: async_sessionmaker, lead_id: str) -> Lead:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead


async def completed_workflows(client: Client, workflow_ids: list[str]) -> int:
    """How many of these workflows have completed."""
    described = await asyncio.gather(
        *(client.get_workflow_handle(w).describe() for w in workflow_ids)
    )
    return sum(d.status == WorkflowExecutionStatus.COMPLETED for d in described)
