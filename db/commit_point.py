"""Commit a transaction and perform one small irreversible write in the same instant.

An effect recorded in the database "before" it happens is lost if the process dies in
between; recorded "after", it is repeated. The gap between the two is what a SIGKILL can
hit. Awaiting the COMMIT and then writing leaves a gap of a whole round trip plus an
event-loop turn (tens of milliseconds on a busy worker: 3 emails lost in 200 journeys
under repeated kills, tests/test_worker_kills.py). Here the COMMIT goes onto the wire and
`act` runs right after, in the same synchronous step; then the COMMIT's reply is awaited.
A kill can only land between two system calls.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def commit_then(session: AsyncSession, act: Callable[[], None]) -> None:
    """Flush and commit `session`, calling `act()` as soon as the COMMIT is sent.

    PostgreSQL (psycopg 3): the COMMIT is sent by psycopg's own generator, `act` runs, then
    the reply is awaited; a failed COMMIT raises after `act` ran. Other databases (the
    demo's SQLite): commit, then `act`.
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
        steps = commit_gen()  # psycopg's COMMIT, a generator of I/O waits
        try:
            first = next(steps)  # sends COMMIT, flushes, stops to wait for the reply
        except StopIteration:  # nothing to commit, or done at once
            act()
        else:
            act()
            await raw.wait(_resumed(first, steps))
    await session.commit()  # SQLAlchemy's bookkeeping; psycopg sees no open transaction


def _resumed(first: Any, steps: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """`steps`, already advanced to its first wait, as a generator psycopg can drive."""
    ready = yield first
    while True:
        try:
            state = steps.send(ready)
        except StopIteration as stop:
            return stop.value
        ready = yield state
