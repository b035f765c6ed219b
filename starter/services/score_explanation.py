"""A lead's score explained at a moment: its running behaviour tally plus the events not
yet folded into it (`journeys.behaviour_tally`), and its facts. The API, the sales inbox
and the scoring activity read it the same way; only a rescore folds and stores.

What an event costs to score stays the same however many the lead has: a rescore reads
only the untallied ones (a partial index holds just those). A tally that can't be used (a
new scoring model, an earlier reset, a moment before its own) is rebuilt from every event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EngagementEvent, Lead, as_utc
from journeys.accounts import email_domain
from journeys.behaviour_tally import (
    BehaviourTally,
    empty_tally,
    fold,
    score_tally,
    tally_from_json,
    usable,
)
from journeys.event_types import event_type_named, is_declared
from journeys.scoring import LeadFacts, ScoredEvent, ScoreExplanation, ScoringModel
from journeys.scoring_models import scoring_model_for

_IDS_PER_STATEMENT = 5_000  # a statement takes at most 65,535 parameters
# What a score is computed from besides the facts and the events, read with the events.
_SCORING_STATE = (
    Lead.behaviour_tally,
    Lead.behaviour_reset_at,
    Lead.behaviour_carryover,
    Lead.score_adjustment,
    Lead.persona,
)


async def explain_score(session: AsyncSession, lead: Lead, now: datetime) -> ScoreExplanation:
    """The lead's score at `now`, with its contributions (computed, nothing stored)."""
    return _explained(lead, await _tally_at(session, lead, now), now)


async def explain_and_tally(session: AsyncSession, lead: Lead, now: datetime) -> ScoreExplanation:
    """The lead's score at `now`, its events up to `now` folded into its stored tally (the
    caller holds the lead's row lock and commits)."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite ignores FOR UPDATE: take its write lock before reading the tally, or a
        # rescore running alongside could store a tally missing the other's events.
        await session.execute(
            update(Lead).where(Lead.id == lead.id).values(behaviour_tally=Lead.behaviour_tally)
        )
    read = await _tally_at(session, lead, now)
    lead.behaviour_tally = read.tally.model_dump(mode="json")
    await _set_tallied(session, read.folded, True)
    if read.rebuilt:  # an event folded by a tally valued later than `now` is not in this one
        await _set_tallied(session, read.later, False)
    return _explained(lead, read, now)


async def _set_tallied(session: AsyncSession, ids: list[int], value: bool) -> None:
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        await session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.id.in_(ids[start : start + _IDS_PER_STATEMENT]))
            .values(tallied=value)
        )


def _explained(lead: Lead, read: _TallyRead, now: datetime) -> ScoreExplanation:
    facts = LeadFacts(
        title=lead.title,
        company_size=lead.company_size,
        industry=lead.industry,
        country=lead.country,
        email_domain=email_domain(lead.email),
        created_at=as_utc(lead.created_at),
    )
    return score_tally(
        read.model,
        facts,
        read.scored,
        now=now,
        adjustment=read.adjustment,
        carryover=read.carryover,
    )


@dataclass(frozen=True)
class _TallyRead:
    """`tally`: valued at now with every event up to now folded in (to store); `scored`:
    the same plus the events dated after now, undecayed (to score by); the ids folded and
    the ids dated after now; `rebuilt`: from every event, the stored tally unusable; the
    model, carryover and adjustment read with the tally (from the same snapshot)."""

    model: ScoringModel
    adjustment: int
    carryover: float
    tally: BehaviourTally
    scored: BehaviourTally
    folded: list[int]
    later: list[int]
    rebuilt: bool


async def _tally_at(session: AsyncSession, lead: Lead, now: datetime) -> _TallyRead:
    # The lead's scoring state and the events not in its tally are read in one statement,
    # so one snapshot: read apart, a rescore committing in between (it folds events in and
    # marks them tallied) would leave an older tally next to no untallied events, and the
    # events between them counted nowhere; a rejection in between would pair one state's
    # reset with another's carryover. `lead`'s own columns may be older than the snapshot.
    events = select(
        EngagementEvent.id,
        EngagementEvent.type,
        EngagementEvent.occurred_at,
        EngagementEvent.properties,
    ).where(EngagementEvent.lead_id == lead.id)
    untallied = events.where(~EngagementEvent.tallied).subquery()  # as the partial index reads
    stored_rows = (
        await session.execute(
            select(*_SCORING_STATE, *untallied.c)
            .select_from(Lead)
            .outerjoin(untallied, true())
            .where(Lead.id == lead.id)
        )
    ).all()
    # No row only if the lead is gone (leads are erased, never deleted): its own columns.
    state = stored_rows[0] if stored_rows else [getattr(lead, c.key) for c in _SCORING_STATE]
    stored_json, reset, carryover, adjustment, persona = state[: len(_SCORING_STATE)]
    model = scoring_model_for(persona)
    reset_at = as_utc(reset)
    stored = tally_from_json(stored_json)
    rebuilt = stored is None or not usable(stored, model, reset_at, now)
    if stored is not None and not rebuilt:
        tally = stored
        first = len(_SCORING_STATE)  # the event's columns; None: the lead has no untallied
        rows: Iterable[Any] = [row[first:] for row in stored_rows if row[first] is not None]
    else:  # the rebuild reads no stored tally: every event, whenever read, is consistent
        tally = empty_tally(model, now, reset_at)
        rows = await session.execute(events)
    due: list[ScoredEvent] = []
    later: list[ScoredEvent] = []
    folded: list[int] = []
    later_ids: list[int] = []
    # Every declared type, built-in or custom, can score; a stored type that is no longer
    # declared (there should be none: declarations are forever) scores nothing.
    for event_id, kind, at, props in rows:
        occurred = as_utc(at) or now
        if not is_declared(kind):
            folded.append(event_id)
            continue
        event = ScoredEvent(
            type=event_type_named(kind),
            occurred_at=occurred,
            url=str((props or {}).get("url") or "")[:2000] or None,
        )
        if occurred <= now:
            due.append(event)
            folded.append(event_id)
        else:
            later.append(event)
            later_ids.append(event_id)
    tally = fold(tally, model, due, now=now, reset_at=reset_at)
    # Not yet in the past: counted in full, folded once they are.
    scored = fold(tally, model, later, now=now, reset_at=reset_at) if later else tally
    return _TallyRead(model, adjustment, carryover, tally, scored, folded, later_ids, rebuilt)
