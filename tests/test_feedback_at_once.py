"""Sales feedback is answered at once, whatever effects the lead workflow is stuck on, and
records who gave it as the key proves it (issue 19, items 2 and 11)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import SalesFeedbackRecord, StageTransition
from starter.dev.smtp_sink import free_port, start_sink
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from starter.worker_wiring import build_worker
from tests.conftest import REP_KEYS, SALES_KEY
from tests.lifecycle_helpers import decider, eventually, lead_row
from tests.test_sales_loop import engage, enroll, make_mql


async def test_feedback_is_answered_within_two_seconds_while_smtp_is_down(
    api: httpx.AsyncClient, temporal_client: Client, settings: Settings,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    port = free_port()  # nothing listens: every email, the rep's MQL notice too, retries
    down = settings.model_copy(update={"smtp_port": port})
    async with build_worker(temporal_client, down, sessions):
        lead_id = await enroll(api, decider())
        await engage(api, lead_id, "demo_request")
        await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.lifecycle_stage == "mql")
        # The lead workflow is now retrying the MQL notification to the rep.

        started = time.monotonic()
        response = await api.post(
            f"/v1/leads/{lead_id}/sales-feedback",
            json={"outcome": "accept"},
            headers={"Authorization": f"Bearer {SALES_KEY}"},  # whoever it was routed to
        )
        answered_in = time.monotonic() - started

        assert response.status_code == 200, response.text
        assert response.json()["stage"] == "sal"
        assert answered_in < 2.0, answered_in
        status = await LeadLifecycle(temporal_client, settings.task_queue).status(lead_id)
        assert status.stage == "sal"
        controller, _ = start_sink(port=port)  # SMTP is back: the effects catch up
        try:
            row = await eventually(
                lambda: lead_row(sessions, lead_id), lambda r: r.lifecycle_stage == "sal", 60
            )
        finally:
            controller.stop()
    assert row.lifecycle_stage == "sal"


async def test_a_managers_feedback_for_a_rep_records_the_manager_as_actor(
    api: httpx.AsyncClient, worker: object, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())  # kim's lead

    response = await api.post(
        f"/v1/leads/{lead_id}/sales-feedback",
        json={"outcome": "reject", "reason": "no-budget", "rep": "sam"},
        headers={"Authorization": f"Bearer {SALES_KEY}"},
    )

    assert response.status_code == 200, response.text
    [record] = await eventually(lambda: _feedback_records(sessions, lead_id), _one)
    actors = await eventually(lambda: _actors_of(sessions, lead_id, "recycled"), _one)
    assert (record.rep, record.actor, record.reason) == ("sam", "sales", "no-budget")
    assert actors == ["sales"]


async def test_a_reps_feedback_is_recorded_as_that_rep_whatever_the_body_says(
    api: httpx.AsyncClient, worker: object, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())
    owner = str((await lead_row(sessions, lead_id)).owner)  # kim, by territory
    someone_else = next(rep for rep in REP_KEYS if rep != owner)

    response = await api.post(
        f"/v1/leads/{lead_id}/sales-feedback",
        json={"outcome": "accept", "rep": someone_else},
        headers={"Authorization": f"Bearer {REP_KEYS[owner]}"},
    )

    assert response.status_code == 200, response.text
    [record] = await eventually(lambda: _feedback_records(sessions, lead_id), _one)
    assert (record.rep, record.actor) == (owner, f"sales:{owner}")


# The answer comes before the feedback's rows are written (the lead workflow records them
# once it is free, waiting for them at most FEEDBACK_EFFECT_WAIT): read them when they are.
async def _feedback_records(
    sessions: async_sessionmaker, lead_id: str
) -> Sequence[SalesFeedbackRecord]:
    async with sessions() as session:
        query = select(SalesFeedbackRecord).where(SalesFeedbackRecord.lead_id == lead_id)
        return (await session.execute(query)).scalars().all()


async def _actors_of(sessions: async_sessionmaker, lead_id: str, stage: str) -> Sequence[str]:
    async with sessions() as session:
        query = select(StageTransition.actor).where(
            StageTransition.lead_id == lead_id, StageTransition.to_stage == stage
        )
        return (await session.execute(query)).scalars().all()


def _one(rows: Sequence[object]) -> bool:
    return len(rows) == 1
