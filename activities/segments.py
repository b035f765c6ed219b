"""Real-time segments and triggers: the lead workflow calls this whenever something about
the lead changed (an event, a score, a stage) and when a time-based condition may flip.
Memberships and their history are rows; triggers fire once per cause (`trigger_firings`)
and start their journey as its re-entry policy allows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import (
    BACKFILL_SEGMENT_BATCH,
    ENROLL_SEGMENT_PAGE,
    SEGMENTS_AND_TRIGGERS,
    BackfillBatchRequest,
    BackfillBatchResult,
    EnrollSegmentPageRequest,
    EnrollSegmentPageResult,
    SegmentsAndTriggersRequest,
    SegmentsAndTriggersResult,
)
from activities.leads import lead_facts
from db.models import (
    Account,
    EngagementEvent,
    Enrollment,
    Lead,
    SegmentMembership,
    SegmentTransition,
    TriggerFiring,
    as_utc,
    utcnow,
)
from db.writes import insert_ignoring_conflict
from journeys.registry import UnknownJourneyError, all_triggers, get_journey
from journeys.segment_rules import (
    SegmentEvent,
    SegmentFacts,
    evaluate,
    event_needs,
)
from journeys.segments import all_segments, get_segment
from journeys.timezones import lead_zone
from journeys.triggers import (
    Firing,
    HappenedEvent,
    LeadDates,
    SegmentEntry,
    StageReached,
    firings,
    next_date_moment,
)
from starter.services.enrollment import start_journey
from starter.services.journey_signals import journeys_of, signal_journeys
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import SEGMENT_LEFT_SIGNAL

log = logging.getLogger(__name__)


class SegmentChange:
    """What a segment transition row records."""

    ENTERED = "entered"
    LEFT = "left"


class SegmentActivities:
    """Segment membership and triggers, with an injected Temporal handle and sessions."""

    def __init__(
        self, lifecycle: LeadLifecycle, sessions: async_sessionmaker, default_timezone: str = "UTC"
    ) -> None:
        self._lifecycle = lifecycle
        self._sessions = sessions
        self._default_timezone = default_timezone

    @activity.defn(name=SEGMENTS_AND_TRIGGERS.name)
    async def segments_and_triggers(
        self, request: SegmentsAndTriggersRequest
    ) -> SegmentsAndTriggersResult:
        """Bring the lead's memberships up to date, tell its journeys about segments it
        left, and start the journeys whose triggers fire.

        The memberships, their transitions and the firings they cause are written in one
        transaction; journeys start after it, from the firings still without an outcome,
        so a crash in between leaves work the retry finds (a firing is never lost, and its
        unique key means it is never done twice)."""
        async with self._sessions() as session:
            # Locked: one evaluation of a lead at a time (a timed-out attempt still running
            # and its retry would otherwise both write memberships and firings).
            # NO KEY UPDATE: events of the lead are inserted meanwhile (`load_lead`).
            lead = await session.get(Lead, request.lead_id, with_for_update={"key_share": True})
            if lead is None or lead.erased_at is not None:
                return SegmentsAndTriggersResult(erased=True)
            now = await _not_before_last_change(session, lead.id, request.now)
            facts = await segment_facts(session, lead, now)
            change = await _membership_change(session, lead.id, facts, now)
            if change.left:  # before the commit: a retry re-evaluates and signals again
                await signal_journeys(
                    self._lifecycle.client,
                    await journeys_of(session, lead.id),
                    SEGMENT_LEFT_SIGNAL,
                    list(change.left),
                )
            await _record_transitions(session, lead.id, change, now, request.cause)
            dates = LeadDates(
                properties=lead.properties or {},
                zone=lead_zone(lead.timezone, lead.country, self._default_timezone).key,
                now=now,
            )
            fired = firings(
                all_triggers(),
                events=await _events(session, lead.id, request.event_ids),
                entries=tuple(SegmentEntry(segment=s, at=now) for s in change.entered),
                stages=tuple(StageReached(stage=s.stage, key=s.key) for s in request.stages),
                dates=dates,
            )
            await _record_firings(session, lead.id, fired)
            await session.commit()
        started = await self._start_pending(lead.id)
        moments = [change.recheck_at, next_date_moment(all_triggers(), dates)]
        return SegmentsAndTriggersResult(
            entered=change.entered,
            left=change.left,
            started=tuple(started),
            recheck_at=min((m for m in moments if m is not None), default=None),
        )

    @activity.defn(name=BACKFILL_SEGMENT_BATCH.name)
    async def backfill_segment_batch(self, request: BackfillBatchRequest) -> BackfillBatchResult:
        """Evaluate one segment for a batch of leads (by id) and bring their memberships up
        to date. A backfill enters leads quietly: it fires no trigger (a new segment would
        otherwise start its journey for every existing member at once)."""
        definition = get_segment(request.segment)
        async with self._sessions() as session:
            leads = (
                (
                    await session.execute(
                        select(Lead)
                        .where(Lead.id > request.after, Lead.erased_at.is_(None))
                        .order_by(Lead.id)
                        .limit(request.limit)
                    )
                )
                .scalars()
                .all()
            )
            current = set(
                (
                    await session.execute(
                        select(SegmentMembership.lead_id).where(
                            SegmentMembership.segment == request.segment,
                            SegmentMembership.lead_id.in_([lead.id for lead in leads]),
                        )
                    )
                ).scalars()
            )
            members = entered = left = 0
            facts_of = await segment_facts_of(session, list(leads), request.now)
            for lead in leads:
                member = evaluate(definition, facts_of[lead.id], request.now).member
                members += member
                was = lead.id in current
                if member != was:
                    change = MembershipChange(
                        entered=(request.segment,) if member else (),
                        left=() if member else (request.segment,),
                        recheck_at=None,
                    )
                    await _record_transitions(session, lead.id, change, request.now, "backfill")
                    entered, left = entered + member, left + (not member)
            await session.commit()
        return BackfillBatchResult(
            evaluated=len(leads), members=members, entered=entered, left=left,
            last=leads[-1].id if leads else None,
        )  # fmt: skip

    @activity.defn(name=ENROLL_SEGMENT_PAGE.name)
    async def enroll_segment_page(
        self, request: EnrollSegmentPageRequest
    ) -> EnrollSegmentPageResult:
        """A scheduled trigger's page of segment members: each gets a firing for this
        occurrence (once, however often the page is retried) and its journey started."""
        firing = Firing(
            journey=request.journey,
            trigger=f"schedule:{request.segment}",
            cause_key=f"schedule:{request.occurrence}",
        )
        async with self._sessions() as session:
            members = list(
                (
                    await session.execute(
                        select(SegmentMembership.lead_id)
                        .join(Lead, Lead.id == SegmentMembership.lead_id)
                        .where(
                            SegmentMembership.segment == request.segment,
                            SegmentMembership.lead_id > request.after,
                            Lead.erased_at.is_(None),  # an erased lead is started nowhere
                        )
                        .order_by(SegmentMembership.lead_id)
                        .limit(request.limit)
                    )
                ).scalars()
            )
            for lead_id in members:
                await _record_firings(session, lead_id, [firing])
            await session.commit()
        enrolled = 0
        for lead_id in members:
            enrolled += len(await self._start_pending(lead_id))
            activity.heartbeat(lead_id)
        return EnrollSegmentPageResult(
            members=len(members), enrolled=enrolled, last=members[-1] if members else None
        )

    async def _start_pending(self, lead_id: str) -> list[str]:
        """Start the journey of every firing of the lead without an outcome yet, each
        claimed (`FOR UPDATE SKIP LOCKED`) until its outcome is written, so that two
        attempts at once (a timed-out one still running, a scheduled page) never start one
        firing twice; the journeys that started now."""
        started: list[str] = []
        while True:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(TriggerFiring)
                        .where(TriggerFiring.lead_id == lead_id, TriggerFiring.outcome.is_(None))
                        .order_by(TriggerFiring.id)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).scalar_one_or_none()
                if row is None:
                    return started
                row.outcome = await self._start(lead_id, row)
                await session.commit()
                if row.outcome == "enrolled":
                    started.append(row.journey)

    async def _start(self, lead_id: str, row: TriggerFiring) -> str:
        try:
            definition = get_journey(row.journey)
        except UnknownJourneyError:  # the journey was removed since it fired
            return "journey_gone"
        result = await start_journey(
            self._lifecycle.client,
            self._sessions,
            task_queue=self._lifecycle.task_queue,
            lead_id=lead_id,
            definition=definition,
            lifecycle=self._lifecycle,
        )
        row.workflow_id = result.workflow_id
        log.info("trigger %s of %s: lead %s %s", row.trigger, row.journey, lead_id,
                 result.status)  # fmt: skip
        return result.status


async def segment_facts(session: AsyncSession, lead: Lead, now: datetime) -> SegmentFacts:
    """What segment conditions look at: the lead's fields, its account, its journeys and
    its events within the longest window any segment uses."""
    return (await segment_facts_of(session, [lead], now))[lead.id]


async def segment_facts_of(
    session: AsyncSession, leads: list[Lead], now: datetime
) -> dict[str, SegmentFacts]:
    """`segment_facts` for many leads in four queries (leads, accounts, enrollments, events),
    whatever their number: a backfill's batch costs what one lead costs, four times."""
    ids = [lead.id for lead in leads]
    account_ids = {lead.account_id for lead in leads if lead.account_id is not None}
    accounts = {
        account.id: account
        for account in (
            await session.execute(select(Account).where(Account.id.in_(account_ids)))
        ).scalars()
    } if account_ids else {}  # fmt: skip
    journeys: dict[str, list[tuple[str, datetime | None]]] = {i: [] for i in ids}
    rows = await session.execute(
        select(Enrollment.lead_id, Enrollment.journey, Enrollment.completed_at).where(
            Enrollment.lead_id.in_(ids)
        )
    )
    for lead_id, journey, completed in rows:
        journeys[lead_id].append((journey, completed))
    events = await _segment_events(session, ids, now, event_needs(tuple(all_segments().values())))
    return {
        lead.id: SegmentFacts(
            lead=_lead_facts(lead, accounts.get(lead.account_id or "")),
            journeys_in=frozenset(j for j, done in journeys[lead.id] if done is None),
            journeys_completed=frozenset(j for j, done in journeys[lead.id] if done is not None),
            events=tuple(events[lead.id]),
        )
        for lead in leads
    }


async def _segment_events(
    session: AsyncSession, ids: list[str], now: datetime, windows: dict[str, timedelta]
) -> dict[str, list[SegmentEvent]]:
    """The leads' events segments need (`event_needs`), newest first: per type, its
    window's. A lead's long history is not read (the index on lead, type and moment
    finds each range)."""
    events: dict[str, list[SegmentEvent]] = {i: [] for i in ids}
    if not windows:
        return events
    ranges = [
        and_(EngagementEvent.type == kind, EngagementEvent.occurred_at >= now - within)
        for kind, within in windows.items()
    ]
    rows = await session.execute(
        select(
            EngagementEvent.lead_id, EngagementEvent.type, EngagementEvent.occurred_at,
            EngagementEvent.properties,
        )
        .where(EngagementEvent.lead_id.in_(ids), or_(*ranges))
        .order_by(EngagementEvent.occurred_at.desc())
    )  # fmt: skip
    for lead_id, kind, at, props in rows:
        events[lead_id].append(
            SegmentEvent(type=kind, occurred_at=as_utc(at) or now, properties=props or {})
        )
    return events


def _lead_facts(lead: Lead, account: Account | None) -> dict[str, Any]:
    facts: dict[str, Any] = lead_facts(lead)
    return facts | {
        "consent_status": lead.consent_status,
        "topics": [],  # topic subscriptions arrive with the preference center (issue 15)
        "created_at": as_utc(lead.created_at),
        "account_score": account.score if account else None,
        "account_qualified": (account.qualified_at is not None) if account else None,
    }


@dataclass(frozen=True)
class MembershipChange:
    """Segments entered and left now, and the earliest recheck any segment asks for."""

    entered: tuple[str, ...]
    left: tuple[str, ...]
    recheck_at: datetime | None


async def _not_before_last_change(session: AsyncSession, lead_id: str, now: datetime) -> datetime:
    """The moment to evaluate the lead at: `now`, unless a membership change was already
    recorded later. A request can be older than the last evaluation (a local activity
    run again for a workflow task lost with its worker carries that task's time); judged
    at its own time it would undo a newer entry (left, then entered again: a trigger
    firing twice). Memberships only move forward in time."""
    latest = await session.scalar(
        select(func.max(SegmentTransition.at)).where(SegmentTransition.lead_id == lead_id)
    )
    last = as_utc(latest)
    return max(now, last) if last is not None else now


async def _membership_change(
    session: AsyncSession, lead_id: str, facts: SegmentFacts, now: datetime
) -> MembershipChange:
    current = set(
        (
            await session.execute(
                select(SegmentMembership.segment).where(SegmentMembership.lead_id == lead_id)
            )
        ).scalars()
    )
    entered, left, rechecks = [], [], []
    for name, definition in sorted(all_segments().items()):
        verdict = evaluate(definition, facts, now)
        if verdict.recheck_at is not None:
            rechecks.append(verdict.recheck_at)
        if verdict.member and name not in current:
            entered.append(name)
        elif not verdict.member and name in current:
            left.append(name)
    return MembershipChange(tuple(entered), tuple(left), min(rechecks, default=None))


async def _record_transitions(
    session: AsyncSession, lead_id: str, change: MembershipChange, now: datetime, cause: str
) -> None:
    for name in change.entered:
        session.add(SegmentMembership(lead_id=lead_id, segment=name, entered_at=now))
    for name, kind in [(n, SegmentChange.ENTERED) for n in change.entered] + [
        (n, SegmentChange.LEFT) for n in change.left
    ]:
        session.add(SegmentTransition(lead_id=lead_id, segment=name, change=kind, at=now,
                                      cause=cause[:200]))  # fmt: skip
    if change.left:
        await session.execute(
            delete(SegmentMembership).where(
                SegmentMembership.lead_id == lead_id, SegmentMembership.segment.in_(change.left)
            )
        )


async def _record_firings(session: AsyncSession, lead_id: str, fired: list[Firing]) -> None:
    """Add the firings not recorded before (a repeated event id fires nothing new)."""
    if not fired:
        return
    rows = await session.execute(
        select(TriggerFiring.journey, TriggerFiring.cause_key).where(
            TriggerFiring.lead_id == lead_id
        )
    )
    known = {(journey, cause) for journey, cause in rows}
    for firing in fired:
        key = (firing.journey, firing.cause_key[:300])
        if key not in known:
            known.add(key)
            # ON CONFLICT DO NOTHING: a concurrent attempt recording it too is no failure.
            await insert_ignoring_conflict(
                session,
                TriggerFiring,
                {"journey": firing.journey, "lead_id": lead_id, "cause_key": key[1],
                 "trigger": firing.trigger[:200], "fired_at": utcnow()},
            )  # fmt: skip


async def _events(
    session: AsyncSession, lead_id: str, event_ids: tuple[str, ...]
) -> tuple[HappenedEvent, ...]:
    if not event_ids:
        return ()
    rows = await session.execute(
        select(EngagementEvent).where(
            EngagementEvent.lead_id == lead_id, EngagementEvent.event_id.in_(event_ids)
        )
    )
    return tuple(
        HappenedEvent(
            event_id=e.event_id,
            type=e.type,
            occurred_at=as_utc(e.occurred_at) or e.received_at,
            properties=e.properties or {},
        )
        for e in rows.scalars()
    )
