"""The commit point on PostgreSQL: the COMMIT and the irreversible write go out together,
and a COMMIT that fails afterwards is reported as of unknown outcome, so the caller can
record its effect again (db/commit_point.py, activities/outbox_confirmation.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from activities.outbox_confirmation import SendConfirmations
from db.commit_point import CommitOutcomeUnknown, SocketWrite, commit_then
from db.models import OutboxEmail, utcnow
from tests.conftest import new_email
from tests.lifecycle_helpers import create_confirmed_lead


async def _pending_outbox(sessions: async_sessionmaker) -> OutboxEmail:
    lead_id = await create_confirmed_lead(sessions, {"email": new_email("commit")})
    async with sessions() as session:
        row = OutboxEmail(
            idempotency_key=f"commit-point/{lead_id}", lead_id=lead_id, workflow_id="journey:t",
            step_id="hello", template="welcome", message_id=f"<{lead_id}@test>",
        )  # fmt: skip
        session.add(row)
        await session.commit()
        return row


async def _status(sessions: async_sessionmaker, outbox_id: int) -> str:
    async with sessions() as session:
        query = select(OutboxEmail.status).where(OutboxEmail.id == outbox_id)
        return (await session.execute(query)).scalar_one()


async def test_the_write_follows_a_successful_commit(sessions: async_sessionmaker) -> None:
    row = await _pending_outbox(sessions)
    acted: list[str] = []
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "sent"
        await commit_then(session, lambda: acted.append(stored.status))
    assert acted == ["sent"]
    assert await _status(sessions, row.id) == "sent"


async def test_a_commit_failing_after_the_write_is_reported_as_of_unknown_outcome(
    sessions: async_sessionmaker, engine: AsyncEngine
) -> None:
    row = await _pending_outbox(sessions)
    acted: list[bool] = []
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "sent"
        await session.flush()
        backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as other:  # the database drops this session's connection
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await asyncio.sleep(0.3)
        with pytest.raises(CommitOutcomeUnknown):
            await commit_then(session, lambda: acted.append(True))
    assert acted == [True]  # the effect went out: the caller must record it again
    assert await _status(sessions, row.id) == "pending"


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


def _socket_write(ours: socket.socket, fallback: list[bytes]) -> SocketWrite:
    return SocketWrite(socket=ours.fileno, data=b".\r\n", fallback=fallback.append)


async def test_a_socket_write_goes_out_with_a_successful_commit(
    sessions: async_sessionmaker, socket_pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = socket_pair
    row = await _pending_outbox(sessions)
    fallback: list[bytes] = []
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "sent"
        await commit_then(session, _socket_write(ours, fallback))
    assert theirs.recv(16) == b".\r\n"
    assert fallback == []  # written with the COMMIT, not the usual way
    assert await _status(sessions, row.id) == "sent"


async def test_a_commit_failing_after_a_socket_write_is_reported_as_of_unknown_outcome(
    sessions: async_sessionmaker,
    engine: AsyncEngine,
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = socket_pair
    row = await _pending_outbox(sessions)
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "sent"
        await session.flush()
        backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await asyncio.sleep(0.3)
        with pytest.raises(CommitOutcomeUnknown):
            await commit_then(session, _socket_write(ours, []))
    assert theirs.recv(16) == b".\r\n"  # the effect went out: the caller records it again
    assert await _status(sessions, row.id) == "pending"


async def test_a_socket_closed_before_the_commit_point_leaves_neither_commit_nor_write(
    sessions: async_sessionmaker,
) -> None:
    row = await _pending_outbox(sessions)
    closed = SocketWrite(socket=lambda: None, data=b".\r\n", fallback=lambda _: None)
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "sent"
        with pytest.raises(ConnectionError):
            await commit_then(session, closed)
    assert await _status(sessions, row.id) == "pending"


async def test_an_aborted_transaction_is_not_committed_and_nothing_is_written(
    sessions: async_sessionmaker, socket_pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = socket_pair
    theirs.settimeout(0.2)
    async with sessions() as session:
        with pytest.raises(DBAPIError):
            await session.execute(text("SELECT 1 / 0"))
        with pytest.raises(RuntimeError):
            await commit_then(session, _socket_write(ours, []))
    with pytest.raises(TimeoutError):
        theirs.recv(16)


async def test_a_send_whose_commit_failed_is_recorded_as_sent_afterwards(
    sessions: async_sessionmaker,
) -> None:
    row = await _pending_outbox(sessions)
    confirmations = SendConfirmations(sessions)
    await confirmations.confirm(row.idempotency_key, row.id, "Hello", utcnow())
    assert await _status(sessions, row.id) == "sent"


async def test_another_attempt_waits_for_a_confirmation_under_way(
    sessions: async_sessionmaker,
) -> None:
    row = await _pending_outbox(sessions)
    confirmations = SendConfirmations(sessions)
    confirming = asyncio.create_task(
        confirmations.confirm(row.idempotency_key, row.id, "Hello", utcnow())
    )
    await asyncio.sleep(0)  # the confirmation has started
    await confirmations.settled(row.idempotency_key)
    assert await _status(sessions, row.id) == "sent"  # what the second attempt then reads
    await confirming
