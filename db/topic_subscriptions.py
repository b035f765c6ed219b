"""Leads' choices per topic (`topic_subscriptions`, journeys.topics): read for one lead
(the preference page), for a batch of leads in one query (a broadcast's batch), and
written only for the lead's own action (the preference page, a one-click unsubscribe).

No row means the default: subscribed, at any frequency. So a lead with confirmed consent
gets every topic until it opts out, and existing leads need no backfill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OutboxEmail, TopicSubscription, as_utc
from journeys.outbox import OutboxStatus
from journeys.topics import DEFAULT_CHOICE, TOPICS, Frequency, TopicChoice, next_allowed

# Lead ids per query (one parameter each).
_CHUNK = 5000


def _chunks(lead_ids: Sequence[str]) -> list[list[str]]:
    unique = sorted(set(lead_ids))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]


async def unsubscribed_among(
    session: AsyncSession, lead_ids: Sequence[str], topic: str
) -> set[str]:
    """The leads among `lead_ids` that opted out of `topic` (one query per 5,000 leads)."""
    found: set[str] = set()
    for chunk in _chunks(lead_ids):
        rows = await session.execute(
            select(TopicSubscription.lead_id).where(
                TopicSubscription.topic == topic,
                TopicSubscription.lead_id.in_(chunk),
                TopicSubscription.subscribed.is_(False),
            )
        )
        found.update(rows.scalars())
    return found


async def choices_among(
    session: AsyncSession, lead_ids: Sequence[str], topic: str
) -> dict[str, TopicChoice]:
    """The choices about `topic` that differ from the default, by lead (absent: default)."""
    found: dict[str, TopicChoice] = {}
    for chunk in _chunks(lead_ids):
        rows = await session.execute(
            select(
                TopicSubscription.lead_id,
                TopicSubscription.subscribed,
                TopicSubscription.frequency,
            ).where(TopicSubscription.topic == topic, TopicSubscription.lead_id.in_(chunk))
        )
        for lead_id, subscribed, frequency in rows:
            found[lead_id] = TopicChoice(subscribed, Frequency(frequency))
    return found


async def last_sent_among(
    session: AsyncSession, lead_ids: Sequence[str], topic: str
) -> dict[str, datetime]:
    """When each lead last received an email of `topic` (absent: never)."""
    found: dict[str, datetime] = {}
    for chunk in _chunks(lead_ids):
        rows = await session.execute(
            select(OutboxEmail.lead_id, func.max(OutboxEmail.sent_at))
            .where(
                OutboxEmail.lead_id.in_(chunk),
                OutboxEmail.topic == topic,
                OutboxEmail.status == OutboxStatus.SENT,
            )
            .group_by(OutboxEmail.lead_id)
        )
        found.update({lead_id: as_utc(at) for lead_id, at in rows if at is not None})
    return found


@dataclass(frozen=True)
class TopicHolds:
    """What the leads' topic choices say about sending them an email of a topic now:
    who opted out, and who chose a lower frequency and must wait until when."""

    unsubscribed: set[str]
    not_before: dict[str, datetime]


async def topic_holds(
    session: AsyncSession, lead_ids: Sequence[str], topic: str, now: datetime
) -> TopicHolds:
    """Who among `lead_ids` may not get an email of `topic` at `now`: the opted out, and
    those whose frequency (at most weekly/monthly) holds them (one query, two when some
    lead chose a frequency)."""
    choices = await choices_among(session, lead_ids, topic)
    unsubscribed = {lead for lead, choice in choices.items() if not choice.subscribed}
    limited = {
        lead: choice.frequency
        for lead, choice in choices.items()
        if choice.subscribed and choice.frequency is not Frequency.ANY
    }
    not_before: dict[str, datetime] = {}
    if limited:
        last = await last_sent_among(session, list(limited), topic)
        for lead, frequency in limited.items():
            allowed = next_allowed(frequency, last.get(lead))
            if allowed is not None and allowed > now:
                not_before[lead] = allowed
    return TopicHolds(unsubscribed, not_before)


async def choices_of(session: AsyncSession, lead_id: str) -> dict[str, TopicChoice]:
    """The lead's choice for every declared topic (the default where it made none)."""
    rows = await session.execute(
        select(
            TopicSubscription.topic, TopicSubscription.subscribed, TopicSubscription.frequency
        ).where(TopicSubscription.lead_id == lead_id)
    )
    made = {topic: TopicChoice(subscribed, Frequency(freq)) for topic, subscribed, freq in rows}
    return {topic.name: made.get(topic.name, DEFAULT_CHOICE) for topic in TOPICS}


async def set_choice(
    session: AsyncSession,
    lead_id: str,
    topic: str,
    choice: TopicChoice,
    *,
    source: str,
    at: datetime,
) -> None:
    """Record the lead's choice about `topic` (the caller commits, with its evidence).
    Only the lead's own action may call this: nothing else re-subscribes a topic."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "lead_id": lead_id,
        "topic": topic,
        "subscribed": choice.subscribed,
        "frequency": choice.frequency.value,
        "changed_at": at,
        "source": source[:200],
    }
    statement = insert(TopicSubscription).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[TopicSubscription.lead_id, TopicSubscription.topic],
            set_={k: v for k, v in values.items() if k not in ("lead_id", "topic")},
        )
    )
