"""Per-link click counters written in batches (PostgreSQL): every click counted, the
earliest first click and the latest last one kept, whatever order batches arrive in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from db.email_links import store_links
from db.models import EmailLink, OutboxEmail
from journeys.link_tracking import TrackedLink
from starter.services.click_counts import ClickCounts
from tests.lifecycle_helpers import create_confirmed_lead, decider

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


async def _email_with_a_link(sessions: async_sessionmaker) -> int:
    lead_id = await create_confirmed_lead(sessions, decider())
    async with sessions() as session:
        outbox = OutboxEmail(
            idempotency_key=f"clicks-{uuid.uuid4().hex}", lead_id=lead_id,
            workflow_id=f"journey:test:{lead_id}", step_id="hello", template="welcome",
            message_id=f"<{uuid.uuid4().hex}@nurture.example>",
        )  # fmt: skip
        session.add(outbox)
        await session.flush()
        await store_links(session, [TrackedLink(outbox.id, 0, "https://x.example/a")])
        await session.commit()
        return outbox.id


async def _link(sessions: async_sessionmaker, outbox_id: int) -> EmailLink:
    async with sessions() as session:
        link = await session.get(EmailLink, (outbox_id, 0))
        assert link is not None
        return link


async def test_clicks_added_up_are_written_with_their_first_and_last_moments(
    sessions: async_sessionmaker,
) -> None:
    outbox_id = await _email_with_a_link(sessions)
    counts = ClickCounts(sessions)
    for minutes in (3, 1, 2):
        counts.add(outbox_id, 0, NOW + timedelta(minutes=minutes))

    await counts.flush()

    link = await _link(sessions, outbox_id)
    assert (link.clicks, link.first_clicked_at, link.last_clicked_at) == (
        3, NOW + timedelta(minutes=1), NOW + timedelta(minutes=3),
    )  # fmt: skip


async def test_a_batch_arriving_late_keeps_the_earliest_first_and_latest_last_click(
    sessions: async_sessionmaker,
) -> None:
    outbox_id = await _email_with_a_link(sessions)
    later, earlier = ClickCounts(sessions), ClickCounts(sessions)  # two API processes
    later.add(outbox_id, 0, NOW + timedelta(minutes=5))
    earlier.add(outbox_id, 0, NOW)

    await later.flush()
    await earlier.flush()

    link = await _link(sessions, outbox_id)
    assert (link.clicks, link.first_clicked_at, link.last_clicked_at) == (
        2, NOW, NOW + timedelta(minutes=5),
    )  # fmt: skip


async def test_closing_writes_what_is_pending(sessions: async_sessionmaker) -> None:
    outbox_id = await _email_with_a_link(sessions)
    counts = ClickCounts(sessions)
    counts.start()
    counts.add(outbox_id, 0, NOW)

    await counts.close()

    assert (await _link(sessions, outbox_id)).clicks == 1
