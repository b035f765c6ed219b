"""Commit a transaction and perform one small irreversible write (`act`) at the same
instant, so that a process killed at any moment leaves the two agreeing.

An effect recorded as done before it happens is lost if the process dies in between; one
done before it is recorded happens twice on retry. Neither order can be made atomic
across two servers, so the window between the two writes is made as short as a process
can make it: the COMMIT is written to PostgreSQL's socket and `act` is called in the same
synchronous step, two system calls apart, with the GIL's switch interval cut so that no
other thread can hold the process up between them. A SIGKILL before both leaves neither
(PostgreSQL rolls back a transaction whose COMMIT it never received); after both, both.

History (tests/test_worker_kills.py, tests/test_postgres_restart.py):
- awaiting the COMMIT, then `act`: the window was the reply's trip through a busy event
  loop, tens of milliseconds; repeated SIGKILLs lost 3 emails in 200 journeys;
- waiting for the COMMIT's reply synchronously, then `act`: the window was still the whole
  round trip, and with busy workflow threads each GIL reacquisition inside psycopg waited
  out the 5 ms switch interval (measured p50 47 ms with two busy threads); a random kill
  still lost an email about one suite run in five;
- the body handed to asyncio could still wait in the transport's own buffer when the dot
  was queued behind it (a slow reader, a loaded machine): a kill then lost the queued
  bytes after the COMMIT had gone out. `activities.smtp_delivery` now waits until the
  body has reached the kernel before the commit point (seen once in this session's runs);
- now: the window is the gap between two system calls. The COMMIT's reply is awaited
  afterwards, without blocking the event loop. If it fails (the database restarting),
  the write has happened and the transaction's fate is unknown: `CommitOutcomeUnknown`
  tells the caller, who records the effect again once the database answers.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Generator
from typing import Any

from psycopg import waiting
from psycopg.waiting import Wait
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# How long to wait for a COMMIT's bytes to leave, and separately for its reply.
COMMIT_TIMEOUT_SECONDS = 10.0
# The GIL switch interval between the COMMIT's write and `act` (the default is 5 ms).
CRITICAL_SWITCH_INTERVAL = 1e-5


class CommitOutcomeUnknown(Exception):
    """`act` ran, then the COMMIT failed or went unanswered: whether the transaction took
    is unknown (the database may have committed it before the connection broke)."""


def _until_written(gen: Generator[Wait, Any, Any], state: Wait) -> Generator[Wait, Any, bool]:
    """Drive psycopg's COMMIT generator until the COMMIT has been written in full and only
    its reply is awaited (True), or until it finished (False)."""
    while state != Wait.R:
        ready = yield state
        try:
            state = gen.send(ready)
        except StopIteration:
            return False
    return True


def _resumed(gen: Generator[Wait, Any, Any], state: Wait) -> Generator[Wait, Any, Any]:
    """psycopg's generator again, from the wait it last asked for."""
    ready = yield state
    while True:
        try:
            state = gen.send(ready)
        except StopIteration as done:
            return done.value
        ready = yield state


async def commit_then(session: AsyncSession, act: Callable[[], None]) -> None:
    """Flush `session`, write its COMMIT and call `act()` in one synchronous step, then
    wait for the COMMIT's reply.

    A failure before the COMMIT is written raises and `act` never runs. A failure after
    raises `CommitOutcomeUnknown` (`act` ran). Other databases than PostgreSQL with
    psycopg 3 (the demo's SQLite): an ordinary commit, then `act`.
    """
    await session.flush()
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # a live session's connection
    commit_gen = getattr(raw, "_commit_gen", None)
    if connection.dialect.driver != "psycopg" or commit_gen is None:
        await session.commit()
        act()
        return
    async with raw.lock:
        gen = commit_gen()
        fileno = raw.pgconn.socket
        usual_interval = sys.getswitchinterval()
        sys.setswitchinterval(CRITICAL_SWITCH_INTERVAL)
        try:
            state = next(gen)  # PQsendQuery("COMMIT") and a flush: usually all of it
            if state != Wait.R:  # a full socket buffer: finish writing, blocking
                written = waiting.wait(
                    _until_written(gen, state), fileno, timeout=COMMIT_TIMEOUT_SECONDS
                )
                state = Wait.R if written else None
        except StopIteration:  # nothing to commit
            state = None
        except BaseException:
            sys.setswitchinterval(usual_interval)
            await _discard(connection)
            raise
        try:
            act()
        finally:
            sys.setswitchinterval(usual_interval)
        if state is not None:
            try:
                await waiting.wait_async(
                    _resumed(gen, state), fileno, timeout=COMMIT_TIMEOUT_SECONDS
                )
            except Exception as exc:
                await _discard(connection)
                raise CommitOutcomeUnknown(str(exc)) from exc
            except BaseException:
                await _discard(connection)
                raise
    await session.commit()  # SQLAlchemy's bookkeeping; psycopg sees no open transaction


async def _discard(connection: AsyncConnection) -> None:
    """Never reuse a connection whose protocol state is unknown."""
    await asyncio.shield(connection.invalidate())
