"""Writes that are idempotent by a unique constraint."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Base


async def insert_once(session: AsyncSession, row: Base) -> bool:
    """Insert `row` and commit; False (and nothing written) when a unique key already holds it.

    The constraint, not a prior SELECT, decides, so concurrent writers can't both insert.
    A rollback expires objects loaded in `session`: read what you need from them first.
    """
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True
