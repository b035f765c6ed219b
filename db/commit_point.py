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
- writing the COMMIT through psycopg, then `act`: psycopg's libpq call releases the GIL,
  and taking it back waits for whichever thread holds it to let go (a workflow thread in
  a long C call: milliseconds); a kill in that wait lost an email about one suite run in
  three on a loaded machine, after every fix above;
- now, for a plain socket (`SocketWrite`): libpq's `PQsendQuery`/`PQflush` and the
  socket's `send` are called through `ctypes.PyDLL`, which keeps the GIL, with the switch
  interval raised so that no thread is let in between: the window is the few
  microseconds between two system calls. The COMMIT's reply is awaited afterwards,
  without blocking the event loop. If it fails (the database restarting) or answers
  anything but success, the write has happened and the transaction's fate is unknown:
  `CommitOutcomeUnknown` tells the caller, who records the effect again once the
  database answers. Other writes (TLS) fall back to psycopg's COMMIT and a 10 µs switch
  interval;
- a kernel send buffer filled by the body (a slow reader) made the dot's `send` fail after
  the COMMIT, and the dot wait in asyncio's buffer: one email lost in a CI run. The body's
  write now waits for room in the socket, and the commit point commits nothing unless the
  socket is writable at that instant.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import select
import socket
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import cache
from typing import Any

from psycopg import generators, pq, waiting
from psycopg.waiting import Wait
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# How long to wait for a COMMIT's bytes to leave, and separately for its reply.
COMMIT_TIMEOUT_SECONDS = 10.0
# The GIL switch interval between the COMMIT's write and `act` (the default is 5 ms).
CRITICAL_SWITCH_INTERVAL = 1e-5


# While the COMMIT and the write go out: long enough that no waiting thread forces the GIL.
HELD_SWITCH_INTERVAL = 0.05


@dataclass(frozen=True)
class SocketWrite:
    """The irreversible write as bytes for a connected plain socket. `socket()` gives its
    file descriptor at the commit point (None if it has closed meanwhile: a number kept
    from earlier could name another connection by then); its user-space buffers are
    empty, so writing past them keeps the order. `fallback(data)` writes bytes the usual
    way (what the socket didn't take at once, or all of it off the fast path)."""

    socket: Callable[[], int | None]
    data: bytes
    fallback: Callable[[bytes], None]

    def __call__(self) -> None:
        self.fallback(self.data)


class WriteFailedAfterCommit(Exception):
    """The COMMIT went out but the write did not (the socket closed meanwhile): the caller
    undoes what the transaction recorded."""


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
    libpq = _gil_holding_libpq()
    if isinstance(act, SocketWrite) and libpq is not None and raw.pgconn.pgconn_ptr:
        async with raw.lock:
            await _commit_and_write(connection, raw.pgconn, libpq, act)
        await session.commit()  # SQLAlchemy's bookkeeping; psycopg sees no open transaction
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
        failed: Exception | None = None
        try:
            act()
        except Exception as exc:  # the COMMIT is out: learn its outcome, then report
            failed = exc
        finally:
            sys.setswitchinterval(usual_interval)
        if state is not None:
            try:
                await waiting.wait_async(
                    _resumed(gen, state), fileno, timeout=COMMIT_TIMEOUT_SECONDS
                )
            except Exception as exc:
                await _discard(connection)
                if failed is not None:
                    raise WriteFailedAfterCommit(str(failed)) from failed
                raise CommitOutcomeUnknown(str(exc)) from exc
            except BaseException:
                await _discard(connection)
                raise
        if failed is not None:
            raise WriteFailedAfterCommit(str(failed)) from failed
    await session.commit()  # SQLAlchemy's bookkeeping; psycopg sees no open transaction


async def _discard(connection: AsyncConnection) -> None:
    """Never reuse a connection whose protocol state is unknown."""
    await asyncio.shield(connection.invalidate())


class _LibPq:
    """libpq's send functions, called with the GIL held (`ctypes.PyDLL`)."""

    def __init__(self, extension: str) -> None:
        # Looked up through psycopg's own extension module: its libpq (psycopg-binary
        # bundles one) may not be the first or only libpq in the process.
        lib = ctypes.PyDLL(extension)
        self.version = lib.PQlibVersion
        self.version.restype = ctypes.c_int
        self.send_query = lib.PQsendQuery
        self.send_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.send_query.restype = ctypes.c_int
        self.flush = lib.PQflush
        self.flush.argtypes = [ctypes.c_void_p]
        self.flush.restype = ctypes.c_int
        libc = ctypes.PyDLL(None, use_errno=True)
        self.send = libc.send
        self.send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self.send.restype = ctypes.c_ssize_t


@cache
def _gil_holding_libpq() -> _LibPq | None:
    """psycopg's libpq, callable with the GIL held; None where that can't be had safely
    (the pure-Python implementation, another platform, a version mismatch)."""
    modules = {"binary": "psycopg_binary.pq", "c": "psycopg_c.pq"}
    name = modules.get(pq.__impl__)
    if name is None or not sys.platform.startswith("linux"):
        return None
    try:
        extension = importlib.import_module(name).__file__
        libpq = _LibPq(str(extension))
    except (ImportError, OSError, AttributeError):
        return None
    return libpq if libpq.version() == pq.version() else None


_SEND_FLAGS = socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT


async def _commit_and_write(
    connection: AsyncConnection, pgconn: Any, libpq: _LibPq, write: SocketWrite
) -> None:
    """Send COMMIT and `write` with the GIL held throughout, then await the COMMIT's reply."""
    status = pgconn.transaction_status
    if status == pq.TransactionStatus.IDLE:
        write()  # nothing to commit
        return
    if status != pq.TransactionStatus.INTRANS:  # an aborted transaction commits nothing
        await _discard(connection)
        state = pq.TransactionStatus(status).name
        raise RuntimeError(f"cannot commit a transaction in state {state}")
    pointer = pgconn.pgconn_ptr
    usual_interval = sys.getswitchinterval()
    # Raise the interval, then let go of the GIL and take it back: taking it clears any
    # drop request pending, and threads wait out the long interval before asking again.
    sys.setswitchinterval(HELD_SWITCH_INTERVAL)
    time.sleep(0)  # noqa: ASYNC251  (no wait: a GIL hand-over, microseconds)
    written = 0
    try:
        fd = write.socket()  # None: closed meanwhile; then nothing is sent, not even COMMIT
        if fd is None:
            raise ConnectionError("the connection closed before the commit point")
        if libpq.send_query(pointer, b"COMMIT") != 1:
            raise RuntimeError(pgconn.error_message.decode(errors="replace"))
        flushed = libpq.flush(pointer)
        if flushed == 0:
            written = max(libpq.send(fd, write.data, len(write.data), _SEND_FLAGS), 0)
    except BaseException:
        sys.setswitchinterval(usual_interval)
        await _discard(connection)
        raise
    sys.setswitchinterval(usual_interval)
    if flushed != 0:  # the socket's buffer was full (or the connection broke)
        try:
            _flush_blocking(pgconn, libpq)
        except BaseException:
            await _discard(connection)
            raise
    failed: Exception | None = None
    if written < len(write.data):
        try:
            write.fallback(write.data[written:])
        except Exception as exc:  # the COMMIT is out: learn its outcome, then report
            failed = exc
    try:
        results = await waiting.wait_async(
            generators.execute(pgconn), pgconn.socket, timeout=COMMIT_TIMEOUT_SECONDS
        )
    except BaseException as exc:
        await _discard(connection)
        if failed is not None:
            raise WriteFailedAfterCommit(str(failed)) from failed
        if isinstance(exc, Exception):
            raise CommitOutcomeUnknown(str(exc)) from exc
        raise
    if failed is not None:
        raise WriteFailedAfterCommit(str(failed)) from failed
    committed = results and results[-1].status == pq.ExecStatus.COMMAND_OK
    if not committed or results[-1].command_status != b"COMMIT":
        await _discard(connection)
        raise CommitOutcomeUnknown("the COMMIT was not answered with success")


def _flush_blocking(pgconn: Any, libpq: _LibPq) -> None:
    """Finish writing the COMMIT before anything else goes out (rare: a full buffer);
    nothing else is written before it has, so giving up here is safe."""
    pointer = pgconn.pgconn_ptr
    deadline = time.monotonic() + COMMIT_TIMEOUT_SECONDS
    while (flushed := libpq.flush(pointer)) == 1:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the COMMIT could not be written in time")
        select.select([pgconn.socket], [pgconn.socket], [], left)
        pgconn.consume_input()
    if flushed != 0:
        raise RuntimeError(pgconn.error_message.decode(errors="replace"))
