"""Journeys that start themselves, on the real stack: an event puts a lead into a segment
within the second, the segment's trigger starts a journey once, a stage change starts
another; memberships and their history are rows (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.segments import segment_facts
from db.models import Lead, SegmentMembership, SegmentTransition, TriggerFiring
from journeys.segment_rules import evaluate
from journeys.segments import get_segment
from starter.dev.smtp_sink import SmtpSink
from starter.services.lead_workflow import upgrade_lead_workflows
from starter.services.schedules import sync_schedules
from starter.settings import Settings
from tests.conftest import new_email
from tests.lifecycle_helpers import create_confirmed_lead, decider, eventually
from tests.test_handover_crash import start_worker
from tests.test_sales_loop import make_mql
from workflows.contracts import lead_workflow_id
from workflows.scheduled_enrollment import trigger_schedule_id
from workflows.segment_backfill import segment_backfill_workflow_id


async def _pricing_views(api: httpx.AsyncClient, lead_id: str, ids: list[str]) -> None:
    for event_id in ids:
        response = await api.post(
            "/v1/events",
            json={"lead_id": lead_id, "type": "page_view", "event_id": event_id,
                  "properties": {"url": "https://example.com/pricing"}},
        )  # fmt: skip
        assert response.status_code == 202, response.text


async def _memberships(sessions: async_sessionmaker, lead_id: str) -> set[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(SegmentMembership.segment).where(SegmentMembership.lead_id == lead_id)
        )
        return set(rows.scalars())


async def test_three_pricing_views_put_the_lead_in_pricing_visitors(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("pricing")})

    await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])

    await eventually(lambda: _memberships(sessions, lead_id), lambda m: "pricing-visitors" in m)
    async with sessions() as session:
        history = (
            await session.execute(
                select(SegmentTransition.segment, SegmentTransition.change).where(
                    SegmentTransition.lead_id == lead_id
                )
            )
        ).all()
    assert ("pricing-visitors", "entered") in history


async def test_two_pricing_views_are_not_enough(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("pricing-two")})

    await _pricing_views(api, lead_id, ["pv-1", "pv-2"])
    await asyncio.sleep(2)

    assert "pricing-visitors" not in await _memberships(sessions, lead_id)


async def test_entering_pricing_visitors_sends_the_follow_up_once_even_when_events_repeat(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email = new_email("pricing-once")
    lead_id = await create_confirmed_lead(sessions, {"email": email, "first_name": "Ada"})

    await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])
    received = await smtp.wait_for(email, 1)
    await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])  # the same events again
    await asyncio.sleep(2)

    assert [m["Subject"] for m in smtp.to(email)] == [received[0]["Subject"]]
    assert "pricing" in received[0]["Subject"].lower()
    async with sessions() as session:
        fired = (
            await session.execute(
                select(TriggerFiring.journey, TriggerFiring.outcome).where(
                    TriggerFiring.lead_id == lead_id
                )
            )
        ).all()
    assert fired == [("pricing-follow-up", "enrolled")]


async def test_an_event_trigger_starts_its_journey(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("form-start")})

    response = await api.post(
        "/v1/events", json={"lead_id": lead_id, "type": "form_start", "event_id": "fs-1"}
    )
    assert response.status_code == 202, response.text

    async def firings() -> list[tuple[str, str | None]]:
        async with sessions() as session:
            rows = await session.execute(
                select(TriggerFiring.journey, TriggerFiring.outcome).where(
                    TriggerFiring.lead_id == lead_id
                )
            )
            return [(journey, outcome) for journey, outcome in rows]

    fired = await eventually(firings, lambda f: bool(f) and all(o for _, o in f))
    assert fired == [("form-reminder", "enrolled")]


async def test_the_api_shows_segments_their_members_and_what_started_a_journey(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("pricing-api")})
    await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])
    await eventually(lambda: _memberships(sessions, lead_id), lambda m: "pricing-visitors" in m)

    sizes = {s["name"]: s["size"] for s in (await api.get("/v1/segments")).json()}
    segment = (await api.get("/v1/segments/pricing-visitors")).json()
    members: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/segments/pricing-visitors/members", params=params)).json()
        members += [m["lead_id"] for m in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    lead = await eventually(
        lambda: api.get(f"/v1/leads/{lead_id}"),
        lambda r: any(j["started_by"] for j in r.json()["journeys"]),
    )

    assert sizes["pricing-visitors"] >= 1 and segment["definition"]["kind"] == "events"
    assert lead_id in members
    assert [s["segment"] for s in lead.json()["segments"]] == ["pricing-visitors"]
    assert [(j["journey"], j["started_by"]) for j in lead.json()["journeys"]] == [
        ("pricing-follow-up", "segment_entry:pricing-visitors")
    ]


async def test_an_unknown_segment_is_a_404_listing_the_known_ones(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/segments/nope")

    assert response.status_code == 404
    assert "pricing-visitors" in response.json()["detail"][0]["msg"]


async def test_becoming_an_mql_starts_mql_alert_and_the_owner_gets_the_alert(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    lead = decider()
    lead_id = await make_mql(api, sessions, lead)

    alerts = await eventually(
        lambda: _alerts(smtp, str(lead["first_name"])), lambda found: len(found) == 1
    )
    await asyncio.sleep(1)  # room for a second alert, were there one

    assert alerts[0]["Subject"].startswith("MQL alert")
    assert len(await _alerts(smtp, str(lead["first_name"]))) == 1
    async with sessions() as session:
        fired = (
            await session.execute(
                select(TriggerFiring.journey, TriggerFiring.trigger).where(
                    TriggerFiring.lead_id == lead_id, TriggerFiring.journey == "mql-alert"
                )
            )
        ).all()
    assert [tuple(f) for f in fired] == [("mql-alert", "stage:mql")]


async def _alerts(smtp: SmtpSink, first_name: str) -> list:
    return [
        m for m in smtp.to("kim@sales.nurture.example")
        if m["Subject"].startswith("MQL alert") and first_name in m["Subject"]
    ]  # fmt: skip


async def test_a_backfill_reports_the_size_a_direct_evaluation_gives(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    # A backfill another test started (the contract test's stateful phase finds the
    # segment names) may be left on that test's task queue, with no worker any more.
    segment = get_segment("pricing-visitors")
    earlier = segment_backfill_workflow_id(segment.name, segment.version)
    with contextlib.suppress(RPCError):
        await temporal_client.get_workflow_handle(earlier).terminate("a fresh backfill")

    response = await api.post("/v1/segments/pricing-visitors/backfill")
    assert response.status_code == 202, response.text

    progress = await eventually(
        lambda: api.get("/v1/segments/pricing-visitors/backfill"),
        lambda r: r.status_code == 200 and r.json()["done"],
        within=60,
    )

    direct = 0
    now = datetime.now(UTC)
    async with sessions() as session:
        leads = (await session.execute(select(Lead).where(Lead.erased_at.is_(None)))).scalars()
        for lead in list(leads):
            facts = await segment_facts(session, lead, now)
            direct += evaluate(get_segment("pricing-visitors"), facts, now).member
    assert progress.json()["members"] == direct
    assert progress.json()["evaluated"] >= direct


async def test_a_scheduled_trigger_enrolls_the_segment_members_when_its_schedule_runs(
    api: httpx.AsyncClient,
    worker: Worker,
    sessions: async_sessionmaker,
    temporal_client: Client,
    settings: Settings,
) -> None:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("scheduled")})
    await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])
    await eventually(lambda: _memberships(sessions, lead_id), lambda m: "pricing-visitors" in m)

    kept = await sync_schedules(temporal_client, settings.task_queue)
    schedule = temporal_client.get_schedule_handle(
        trigger_schedule_id(settings.task_queue, "weekly-live-demo", "pricing-visitors")
    )
    description = await schedule.describe()
    await schedule.trigger()  # as on a Monday at 09:00 in Berlin

    async def fired() -> list[tuple[str, str | None]]:
        async with sessions() as session:
            rows = await session.execute(
                select(TriggerFiring.trigger, TriggerFiring.outcome).where(
                    TriggerFiring.lead_id == lead_id, TriggerFiring.journey == "weekly-live-demo"
                )
            )
            return [(trigger, outcome) for trigger, outcome in rows]

    assert await eventually(fired, lambda f: bool(f) and all(o for _, o in f), within=60) == [
        ("schedule:pricing-visitors", "enrolled")
    ]
    assert schedule.id in kept
    assert description.schedule.spec.time_zone_name == "Europe/Berlin"
    await schedule.delete()


async def test_the_follow_up_goes_out_once_when_the_worker_is_killed_and_events_repeat(
    api: httpx.AsyncClient, sessions: async_sessionmaker, smtp: SmtpSink, settings: Settings
) -> None:
    email = new_email("pricing-kill")
    lead_id = await create_confirmed_lead(sessions, {"email": email})
    worker = await start_worker(settings, "http://127.0.0.1:9/unused")
    try:
        await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])
        await asyncio.sleep(random.uniform(0.05, 0.6))  # somewhere in segments and triggers
        worker.kill()
        await worker.wait()
        worker = await start_worker(settings, "http://127.0.0.1:9/unused")
        await _pricing_views(api, lead_id, ["pv-1", "pv-2", "pv-3"])  # the client retries
        await smtp.wait_for(email, 1, within=60)
        await asyncio.sleep(2)  # room for a second email, were there one
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 60)

    subjects = [m["Subject"] for m in smtp.to(email)]
    assert len(subjects) == 1 and "pricing" in subjects[0].lower()
    async with sessions() as session:
        fired = (
            await session.execute(
                select(TriggerFiring.journey).where(TriggerFiring.lead_id == lead_id)
            )
        ).scalars()
        assert list(fired) == ["pricing-follow-up"]


async def test_a_form_submission_starts_the_journey_that_declares_the_form(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    response = await api.post(
        "/v1/forms/whitepaper-download/submissions",
        json={"submission_id": "wp-trigger-1", "lead": {"email": new_email("form-trigger")},
              "consent": {"marketing": True, "text_version": "2026-11"}},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    lead = (await api.get(f"/v1/leads/{response.json()['lead_id']}")).json()

    assert response.json()["journey"] == "whitepaper-nurture"
    assert [(j["journey"], j["started_by"]) for j in lead["journeys"]] == [
        ("whitepaper-nurture", "form:whitepaper-download")
    ]


async def test_upgrading_lead_workflows_continues_each_on_the_current_code(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    lead_id = (await api.post("/v1/leads", json={"lead": {"email": new_email("upgrade")}})).json()[
        "lead_id"
    ]
    handle = temporal_client.get_workflow_handle(lead_workflow_id(lead_id))
    first = await eventually(handle.describe, lambda d: d.status is not None)

    asked = await upgrade_lead_workflows(temporal_client)

    later = await eventually(
        lambda: temporal_client.get_workflow_handle(lead_workflow_id(lead_id)).describe(),
        lambda d: d.run_id != first.run_id,
    )
    assert asked >= 1 and later.status is not None and later.status.name == "RUNNING"
