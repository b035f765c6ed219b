"""Every click on a tracked link counted, without a transaction per click: the API
process adds clicks up in memory and writes them every `FLUSH_EVERY` seconds in one
transaction (a click's engagement event, once per link and email, is stored before its
redirect by the event intake; these counters are the per-link totals the click report
reads). A process that is killed loses the clicks of its last fraction of a second from
these totals (a graceful stop writes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.email_links import count_clicks

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.2  # seconds


@dataclass
class _Tally:
    clicks: int
    first: datetime
    last: datetime


class ClickCounts:
    """One API process's pending link clicks (`start()` in the lifespan, `close()` at
    shutdown, which writes what is pending)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._pending: dict[tuple[int, int], _Tally] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Write the pending counts every `FLUSH_EVERY` seconds."""
        self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        """Stop, and write what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def add(self, outbox_id: int, position: int, at: datetime) -> None:
        """One more click on link `position` of email `outbox_id`, at `at`."""
        self._merge((outbox_id, position), _Tally(1, at, at))

    def _merge(self, key: tuple[int, int], more: _Tally) -> None:
        tally = self._pending.get(key)
        if tally is None:
            self._pending[key] = more
            return
        tally.clicks += more.clicks
        tally.first, tally.last = min(tally.first, more.first), max(tally.last, more.last)

    async def flush(self) -> None:
        """Write the pending counts in one transaction (kept for the next try if it fails)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self._sessions() as session:
                await count_clicks(
                    session,
                    [(o, p, t.clicks, t.first, t.last) for (o, p), t in sorted(pending.items())],
                )
                await session.commit()
        except BaseException as exc:  # not written (the database is away, or a stop came
            # in the middle): back for the next flush, `close()`'s included
            log.warning("%d link counters not written: %r", len(pending), exc)
            for key, tally in pending.items():
                self._merge(key, tally)
            if not isinstance(exc, Exception):
                raise

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.flush()
