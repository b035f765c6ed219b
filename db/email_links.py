"""The tracked links of sent emails (`email_links`): stored in bulk with the send, read by
the click redirect, counted per click, summed per link for the analytics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.bulk import on_postgresql
from db.models import EmailLink, OutboxEmail
from journeys.link_tracking import TrackedLink

# Rows per INSERT statement (5 parameters each: far below PostgreSQL's 65,535).
_CHUNK = 5000


async def store_links(session: AsyncSession, links: Sequence[TrackedLink]) -> None:
    """Store the links of any number of emails in one statement per 5,000 links (the
    caller commits, with the emails' `sent` status). Idempotent: a retry that rendered an
    email again overwrites its rows, so the latest rendering is what the links lead to."""
    if not links:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {"outbox_id": link.outbox_id, "position": link.position, "url": link.url,
         "name": link.name}
        for link in links
    ]  # fmt: skip
    for start in range(0, len(rows), _CHUNK):
        statement = insert(EmailLink).values(rows[start : start + _CHUNK])
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[EmailLink.outbox_id, EmailLink.position],
                set_={"url": statement.excluded.url, "name": statement.excluded.name},
            )
        )


@dataclass(frozen=True)
class LinkTarget:
    """Where a tracked link leads, and whose email it is in."""

    url: str
    name: str | None
    lead_id: str


async def link_target(session: AsyncSession, outbox_id: int, position: int) -> LinkTarget | None:
    """The target of link `position` of email `outbox_id` (None: no such link)."""
    found = (
        await session.execute(
            select(EmailLink.url, EmailLink.name, OutboxEmail.lead_id)
            .join(OutboxEmail, OutboxEmail.id == EmailLink.outbox_id)
            .where(EmailLink.outbox_id == outbox_id, EmailLink.position == position)
        )
    ).first()
    return None if found is None else LinkTarget(found.url, found.name, found.lead_id)


async def count_clicks(
    session: AsyncSession, counts: list[tuple[int, int, int, datetime, datetime]]
) -> None:
    """Add clicks to links — (outbox id, position, clicks, first at, last at) each: every
    click counts here; the engagement event is recorded once per link and email — in one
    statement on PostgreSQL (arrays unnested), one per link elsewhere. The caller commits."""
    if not counts:
        return
    if not on_postgresql(session):
        for outbox_id, position, added, first, last in counts:
            await session.execute(
                update(EmailLink)
                .where(EmailLink.outbox_id == outbox_id, EmailLink.position == position)
                .values(
                    clicks=EmailLink.clicks + added,
                    # Two processes' flushes may arrive out of order: the earliest first
                    # click and the latest last one win (SQLite's min/max of two values).
                    first_clicked_at=func.min(
                        func.coalesce(EmailLink.first_clicked_at, first), first
                    ),
                    last_clicked_at=func.max(func.coalesce(EmailLink.last_clicked_at, last), last),
                )
            )
        return
    outboxes, positions, clicks, firsts, lasts = (list(c) for c in zip(*counts, strict=True))
    await session.execute(
        text(
            "UPDATE email_links AS l SET clicks = l.clicks + c.clicks, "
            "first_clicked_at = least(l.first_clicked_at, c.first_at), "
            "last_clicked_at = greatest(l.last_clicked_at, c.last_at) "
            "FROM unnest(CAST(:outboxes AS integer[]), CAST(:positions AS integer[]), "
            "CAST(:clicks AS integer[]), CAST(:firsts AS timestamptz[]), "
            "CAST(:lasts AS timestamptz[])) AS c(outbox_id, position, clicks, first_at, last_at) "
            "WHERE l.outbox_id = c.outbox_id AND l.position = c.position"
        ),
        {"outboxes": outboxes, "positions": positions, "clicks": clicks, "firsts": firsts,
         "lasts": lasts},
    )  # fmt: skip


@dataclass(frozen=True)
class LinkClickRow:
    """Clicks on one URL of one template: emails that carried it, recipients who clicked
    it, all clicks."""

    template: str
    url: str
    name: str | None
    emails: int
    unique_clicks: int
    total_clicks: int


async def clicks_per_link(session: AsyncSession, *where: ColumnElement[Any]) -> list[LinkClickRow]:
    """Per template and URL, over the sent emails `where` selects (conditions on
    `OutboxEmail`, e.g. a journey's workflow ids or a broadcast's outbox rows)."""
    clicked_by = case((EmailLink.clicks > 0, OutboxEmail.lead_id))
    rows = await session.execute(
        select(
            OutboxEmail.template,
            EmailLink.url,
            func.max(EmailLink.name),
            func.count(),
            func.count(distinct(clicked_by)),
            func.coalesce(func.sum(EmailLink.clicks), 0),
        )
        .join(OutboxEmail, OutboxEmail.id == EmailLink.outbox_id)
        .where(*where)
        .group_by(OutboxEmail.template, EmailLink.url)
    )
    return [LinkClickRow(t, u, n, int(e), int(c), int(s)) for t, u, n, e, c, s in rows]
