"""Recording "sent" after the fact, when the COMMIT that should have recorded it failed
after the message's final dot had gone out (`db.commit_point.CommitOutcomeUnknown`).

The server accepted the message, so the row must say "sent" before any retry reads it,
or the retry sends it again. The database is probably restarting: the record is retried
until it lands or `CONFIRM_DEADLINE` passes. Until then, another attempt of the same
send in this worker waits for it (`settled`); one in another worker process is held off
only by the row lock its own read takes, which is gone with the failed connection: that
double fault (a database failure inside the two-syscall window, then the activity
retried elsewhere before the database is back) remains, and is documented in
docs/email.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboxEmail
from journeys.outbox import OutboxStatus

log = logging.getLogger(__name__)

CONFIRM_DEADLINE_SECONDS = 300.0
_FIRST_PAUSE, _LONGEST_PAUSE = 0.2, 5.0


async def set_outbox(
    session: AsyncSession, outbox_id: int, status: OutboxStatus, **values: object
) -> None:
    """Set one outbox row's status (and other columns) by id (the caller commits)."""
    await session.execute(
        update(OutboxEmail).where(OutboxEmail.id == outbox_id).values(status=status, **values)
    )


class SendConfirmations:
    """Records sends as sent in fresh sessions, retrying; one at a time per key."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions
        self._pending: dict[str, asyncio.Task[None]] = {}

    async def settled(self, idempotency_key: str) -> None:
        """Wait until no confirmation of this key is under way in this process."""
        task = self._pending.get(idempotency_key)
        if task is not None:
            await asyncio.wait([task])

    async def confirm(
        self, idempotency_key: str, outbox_id: int, subject: str, sent_at: datetime
    ) -> None:
        """Mark the row sent, retrying until the database takes it. It goes on even if
        the caller is cancelled: the message is out either way."""
        task = self._pending.get(idempotency_key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._record(outbox_id, subject, sent_at))
            self._pending[idempotency_key] = task
            task.add_done_callback(lambda _: self._pending.pop(idempotency_key, None))
        await asyncio.shield(task)

    async def _record(self, outbox_id: int, subject: str, sent_at: datetime) -> None:
        deadline = time.monotonic() + CONFIRM_DEADLINE_SECONDS
        pause = _FIRST_PAUSE
        while True:
            try:
                async with self._sessions() as session:
                    await set_outbox(
                        session, outbox_id, OutboxStatus.SENT, subject=subject, sent_at=sent_at
                    )
                    await session.commit()
                log.info("outbox %s recorded as sent after a failed COMMIT", outbox_id)
                return
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    log.error("outbox %s was sent but could not be recorded: %s", outbox_id, exc)
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
