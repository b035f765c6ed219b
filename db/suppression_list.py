"""The suppression list: addresses that get no marketing email, kept as keyed hashes.

Written when a lead unsubscribes, bounces or complains, and kept when it is erased; read by
every path that records a claim of consent and again at the moment of sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lead, Suppression
from db.writes import insert_ignoring_conflict
from journeys.consent import SuppressionReason, address_hash


@dataclass(frozen=True)
class SuppressionList:
    """The list under one secret (`NURTURE_SECRET_KEY`): the hash key derives from it."""

    secret: str

    def key(self, email: str) -> str:
        return address_hash(self.secret, email)

    async def entry(self, session: AsyncSession, email: str | None) -> Suppression | None:
        """The address's entry, or None (also for no address)."""
        if email is None:
            return None
        return await session.get(Suppression, self.key(email))

    async def reason(self, session: AsyncSession, email: str | None) -> SuppressionReason | None:
        found = await self.entry(session, email)
        return SuppressionReason(found.reason) if found is not None else None

    async def add(self, session: AsyncSession, email: str, reason: SuppressionReason) -> None:
        """Suppress the address (in the caller's transaction); an entry already there stays
        as it is, with its first reason and date."""
        await insert_ignoring_conflict(
            session, Suppression, {"address_hash": self.key(email), "reason": reason.value}
        )

    async def renew(self, session: AsyncSession, email: str, reason: SuppressionReason) -> None:
        """Suppress the address as of now, with this reason: a confirmation link made
        before this moment no longer lifts it."""
        await self.lift(session, email)
        await self.add(session, email, reason)

    async def backfill(self, session: AsyncSession) -> int:
        """Entries for leads whose status says they are suppressed but that have none (they
        opted out before the list existed); committed. How many were added."""
        statuses = [reason.value for reason in SuppressionReason]
        rows = await session.execute(
            select(Lead.email, Lead.consent_status).where(
                Lead.consent_status.in_(statuses), Lead.email.is_not(None)
            )
        )
        added = 0
        for email, status in rows.all():
            assert email is not None  # filtered above
            if await session.get(Suppression, self.key(email)) is None:
                await self.add(session, email, SuppressionReason(status))
                added += 1
        await session.commit()
        return added

    async def lift(self, session: AsyncSession, email: str) -> None:
        """Take the address off the list: only for the lead's own confirmed opt-in."""
        await session.execute(
            delete(Suppression).where(Suppression.address_hash == self.key(email))
        )
