"""Commit a transaction and perform one small irreversible write right after it, with no
event-loop turn in between.

An effect recorded as done before it happens is lost if the process dies in between. With
an awaited COMMIT the gap is the reply's trip through the event loop: tens of
milliseconds on a busy worker, where repeated SIGKILLs lost 3 emails in 200 journeys
(tests/test_worker_kills.py). Sending the COMMIT and the write together closes that gap
but opens another: a COMMIT that fails (the database restarting) after the write went out
means a second send on retry (tests/test_postgres_restart.py caught it). So the COMMIT's
round trip is waited for *synchronously*, and `act` runs in the same step as its reply is
read: if the COMMIT fails nothing is written; if it succeeds, a kill can only land between
two system calls. The price is the event loop held for one COMMIT round trip per effect.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import waiting
from sqlalchemy.ext.asyncio import AsyncSession

# How long the worker's event loop may wait for one COMMIT before giving up on it.
COMMIT_TIMEOUT_SECONDS = 10.0


async def commit_then(session: AsyncSession, act: Callable[[], None]) -> None:
    """Flush and commit `session`, then call `act()` with no event-loop turn in between.

    PostgreSQL (psycopg 3): the COMMIT is driven by psycopg's own generator, blocking, then
    `act` runs; a failed COMMIT raises and `act` never runs. Other databases (the demo's
    SQLite): an ordinary commit, then `act`.
    """
    await session.flush()
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    commit_gen = getattr(raw, "_commit_gen", None)
    if connection.dialect.driver != "psycopg" or commit_gen is None:
        await session.commit()
        act()
        return
    async with raw.lock:
        try:
            waiting.wait(
                commit_gen(), raw.pgconn.socket, interval=1.0, timeout=COMMIT_TIMEOUT_SECONDS
            )
        except Exception:
            await connection.invalidate()  # its state is unknown: never reuse it
            raise
        act()
    await session.commit()  # SQLAlchemy's bookkeeping; psycopg sees no open transaction
