"""The suppression list: addresses that get no marketing email, kept as keyed hashes.

Written when a lead unsubscribes, bounces or complains, and kept when it is erased; read by
every path that records a claim of consent and again at the moment of sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.bulk import among
from db.models import Suppression
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

    async def suppressed_among(self, session: AsyncSession, emails: list[str]) -> set[str]:
        """Which of `emails` are on the list (one query for a batch)."""
        by_key = {self.key(email): email for email in emails}
        if not by_key:
            return set()
        found = await session.execute(
            select(Suppression.address_hash).where(
                among(session, Suppression.address_hash, list(by_key))
            )
        )
        return {by_key[key] for key in found.scalars()}

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

    async def lift(self, session: AsyncSession, email: str) -> None:
        """Take the address off the list: only for the lead's own confirmed opt-in."""
        await session.execute(
            delete(Suppression).where(Suppression.address_hash == self.key(email))
        )
