"""A rescore folds the lead's new events into its stored tally and reads no other event;
what it scores is what scoring every event at once gives (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from activities.scoring import rescore
from db.models import EngagementEvent, Lead
from journeys.behaviour_tally import tally_from_json
from journeys.dsl import EventType
from journeys.scoring import LeadFacts, ScoredEvent, score_lead
from journeys.scoring_models import scoring_model_for
from starter.services.score_explanation import explain_score
from tests.lifecycle_helpers import create_confirmed_lead, decider

NOW = datetime.now(UTC).replace(microsecond=0)


async def _add_events(
    sessions: async_sessionmaker, lead_id: str, kinds: list[EventType], at: datetime, tag: str
) -> None:
    async with sessions() as session:
        for number, kind in enumerate(kinds):
            session.add(EngagementEvent(
                lead_id=lead_id, event_id=f"{tag}-{number}", type=kind.value, occurred_at=at,
                properties={"url": "https://www.nurture.example/pricing"},
            ))  # fmt: skip
        await session.commit()


async def _rescore(sessions: async_sessionmaker, lead_id: str, now: datetime) -> int:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        assert lead is not None
        explanation = await rescore(session, lead, now, "test")
        await session.commit()
        return explanation.behaviour


async def _every_event_at_once(sessions: async_sessionmaker, lead_id: str, now: datetime) -> int:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        rows = await session.execute(
            select(
                EngagementEvent.type, EngagementEvent.occurred_at, EngagementEvent.properties
            ).where(EngagementEvent.lead_id == lead_id)
        )
        events = [
            ScoredEvent(type=EventType(kind), occurred_at=at, url=props.get("url"))
            for kind, at, props in rows
        ]
        return score_lead(
            scoring_model_for(lead.persona), LeadFacts(), events, now=now,
            reset_at=lead.behaviour_reset_at, carryover=lead.behaviour_carryover,
        ).behaviour  # fmt: skip


async def _untallied(sessions: async_sessionmaker, lead_id: str) -> int:
    async with sessions() as session:
        query = select(func.count()).where(
            EngagementEvent.lead_id == lead_id, EngagementEvent.tallied.is_(False)
        )
        return int((await session.execute(query)).scalar_one())


async def test_a_rescore_folds_new_events_into_the_tally_and_scores_as_all_events_at_once(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.EMAIL_CLICK] * 3, NOW - timedelta(days=20), "a")
    first = await _rescore(sessions, lead_id, NOW - timedelta(days=10))
    assert first == await _every_event_at_once(sessions, lead_id, NOW - timedelta(days=10))
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD, EventType.PAGE_VIEW], NOW, "b")

    second = await _rescore(sessions, lead_id, NOW)

    assert await _untallied(sessions, lead_id) == 0
    assert second == await _every_event_at_once(sessions, lead_id, NOW)


async def test_an_explanation_counts_events_not_yet_tallied_without_storing_anything(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.EMAIL_CLICK], NOW - timedelta(days=1), "a")
    await _rescore(sessions, lead_id, NOW - timedelta(hours=12))
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD], NOW, "b")

    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        explained = await explain_score(session, lead, NOW)

    assert explained.behaviour == await _every_event_at_once(sessions, lead_id, NOW)
    assert await _untallied(sessions, lead_id) == 1


async def test_an_explanation_read_while_a_rescore_commits_counts_every_event(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.EMAIL_CLICK], NOW - timedelta(days=1), "a")
    await _rescore(sessions, lead_id, NOW - timedelta(hours=12))
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD], NOW - timedelta(minutes=1), "b")

    async with sessions() as reader:
        lead = await reader.get(Lead, lead_id)  # the tally without the download
        assert lead is not None
        await _rescore(sessions, lead_id, NOW)  # folds the download in and commits
        explained = await explain_score(reader, lead, NOW)

    assert explained.behaviour == await _every_event_at_once(sessions, lead_id, NOW)


async def test_an_explanation_read_while_a_rejection_commits_scores_by_that_rejection(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD] * 2, NOW - timedelta(days=2), "a")
    await _rescore(sessions, lead_id, NOW - timedelta(days=1))

    async with sessions() as reader:
        lead = await reader.get(Lead, lead_id)  # before the rejection
        assert lead is not None
        async with sessions() as sales:
            rejected = await sales.get(Lead, lead_id)
            assert rejected is not None
            rejected.behaviour_reset_at, rejected.behaviour_carryover = NOW, 0.5
            await sales.commit()
        explained = await explain_score(reader, lead, NOW)

    assert explained.behaviour == await _every_event_at_once(sessions, lead_id, NOW)


async def test_a_new_persona_rebuilds_the_tally_from_every_event(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.WEBINAR_ATTENDED] * 2, NOW, "a")
    await _rescore(sessions, lead_id, NOW)
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        before = tally_from_json(lead.behaviour_tally)
        lead.persona = "practitioner"
        await session.commit()

    after = await _rescore(sessions, lead_id, NOW)

    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        rebuilt = tally_from_json(lead.behaviour_tally)
    assert before is not None and rebuilt is not None and rebuilt.model != before.model
    assert after == await _every_event_at_once(sessions, lead_id, NOW)


async def test_a_rejection_after_the_tally_counts_earlier_events_at_the_carryover(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD] * 2, NOW - timedelta(days=2), "a")
    await _rescore(sessions, lead_id, NOW - timedelta(days=1))
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.behaviour_reset_at, lead.behaviour_carryover = NOW - timedelta(hours=1), 0.5
        await session.commit()
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD], NOW, "b")

    behaviour = await _rescore(sessions, lead_id, NOW)

    assert behaviour == await _every_event_at_once(sessions, lead_id, NOW)


async def test_a_rescore_at_an_earlier_moment_loses_no_event_for_the_next_one(
    sessions: async_sessionmaker,
) -> None:
    lead_id = await create_confirmed_lead(sessions, decider())
    await _add_events(sessions, lead_id, [EventType.DOWNLOAD] * 2, NOW, "a")
    await _rescore(sessions, lead_id, NOW + timedelta(days=1))  # e.g. a wall-clock rescore

    earlier = await _rescore(sessions, lead_id, NOW - timedelta(hours=1))  # the workflow's
    later = await _rescore(sessions, lead_id, NOW + timedelta(days=2))

    assert earlier == await _every_event_at_once(sessions, lead_id, NOW - timedelta(hours=1))
    assert later == await _every_event_at_once(sessions, lead_id, NOW + timedelta(days=2))
