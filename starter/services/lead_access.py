"""Who may see which lead: a sales rep's key sees the leads assigned to that rep."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import Lead
from starter.services.errors import LeadNotFound, NotYourLead
from starter.settings import ApiKeyHolder, Role


def rep_scope(holder: ApiKeyHolder) -> str | None:
    """The rep whose leads this key is limited to; None when it sees every lead.

    Marketing and admin keys see every lead; so does a sales key without a rep (a sales
    manager's key, `sales:<key>`).
    """
    return holder.rep if holder.role == Role.SALES else None


async def ensure_may_see(sessions: async_sessionmaker, holder: ApiKeyHolder, lead_id: str) -> Lead:
    """The lead, if it exists (404) and this key may see it (403)."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
    if lead is None or lead.erased_at is not None:
        raise LeadNotFound(lead_id, loc=("path", "lead_id"))
    rep = rep_scope(holder)
    if rep is not None and lead.owner != rep:
        raise NotYourLead(lead_id)
    return lead
