"""Writes that are idempotent by a unique constraint."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
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


async def insert_ignoring_conflict(
    session: AsyncSession, model: type[Base], values: dict[str, Any]
) -> None:
    """INSERT that does nothing when a unique key already holds the row (get-or-create
    without a failed transaction). PostgreSQL and SQLite both know ON CONFLICT DO NOTHING."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(model).values(**values).on_conflict_do_nothing())


async def insert_many_ignoring_conflicts(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    """Many rows in one statement, each skipped when a unique key already holds it."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(model).on_conflict_do_nothing(), rows)


# SQLSTATEs of a transaction PostgreSQL rolled back to resolve a conflict with another:
# deadlock_detected and serialization_failure. Running it again is the documented remedy.
TRANSIENT_CONFLICTS = frozenset({"40P01", "40001"})


def is_transient_conflict(exc: DBAPIError) -> bool:
    """Whether the failed transaction may simply be run again (a deadlock or a
    serialization failure), as opposed to a real error."""
    return getattr(exc.orig, "sqlstate", None) in TRANSIENT_CONFLICTS
