"""Concurrency: many copies of the same request at once must have one effect."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.worker import Worker

from db.models import EngagementEvent, Enrollment, Lead, OutboxEmail
from starter.dev.smtp_sink import SmtpSink
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from tests.test_email_consent import CONFIRMED, link, local


async def _count(sessions: async_sessionmaker, query: Select[int]) -> int:
    async with sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def test_a_hundred_concurrent_enrollments_of_one_lead_start_one_journey_and_one_email(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email("crowd")
    body = {"journey": "welcome", "lead": {"email": email, "first_name": "Crowd"},
            "consent": CONFIRMED}  # fmt: skip

    responses = await asyncio.gather(*(api.post("/v1/enrollments", json=body) for _ in range(100)))

    assert {r.status_code for r in responses} == {202}, {r.text for r in responses}
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("enrolled") == 1 and statuses.count("already_enrolled") == 99
    assert len({r.json()["lead_id"] for r in responses}) == 1
    await smtp.wait_for(email, 1)
    await asyncio.sleep(1)  # room for a duplicate to show up, if there were one
    assert len(smtp.to(email)) == 1
    lead_id = responses[0].json()["lead_id"]
    assert await _count(sessions, select(func.count()).select_from(Lead).where(
        Lead.email == email)) == 1  # fmt: skip
    assert await _count(sessions, select(func.count()).select_from(Enrollment).where(
        Enrollment.lead_id == lead_id)) == 1  # fmt: skip


async def test_the_same_click_delivered_a_thousand_times_counts_once(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email("clicker")
    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": {"email": email}, "consent": CONFIRMED},
    )
    lead_id = response.json()["lead_id"]
    [welcome] = await smtp.wait_for(email, 1)
    url = local(link(welcome, "/t/c/"))
    gate = asyncio.Semaphore(50)

    async def click() -> int:
        async with gate:
            return (await api.get(url)).status_code

    codes = await asyncio.gather(*(click() for _ in range(1000)))

    assert set(codes) == {302}
    clicks = (
        select(func.count())
        .select_from(EngagementEvent)
        .where(EngagementEvent.lead_id == lead_id, EngagementEvent.type == "email_click")
    )
    await eventually(lambda: _count(sessions, clicks), lambda n: n >= 1)
    await smtp.wait_for(email, 2)  # the click moved the journey on: the next-step email
    await asyncio.sleep(1)
    assert await _count(sessions, clicks) == 1
    assert len(smtp.to(email)) == 2
    sent = select(func.count()).select_from(OutboxEmail).where(OutboxEmail.lead_id == lead_id)
    assert await _count(sessions, sent) == 2
    score = (await api.get(f"/v1/leads/{lead_id}/score")).json()
    clicks_scored = [c for c in score["contributions"] if c["label"] == "email click"]
    assert len(clicks_scored) == 1 and clicks_scored[0]["detail"].startswith("1 x")
