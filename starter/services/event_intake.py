"""Engagement events taken in at HTTP speed: stored durably before the answer, many
requests' rows in one transaction, and signalled to the lead's workflows off the request
path.

`POST /v1/events` and the tracking hits (a click's redirect, an open's pixel) answer once
their event is committed — group commit: while one transaction is being written, the
requests that arrive wait for the next one, which takes all of them (no timer, no added
wait when the API is idle). Then the dispatcher signals each running journey of the lead
and nudges its lead workflow, one lead's events in order, many leads at once, and marks the
events as signalled. A process that dies with events stored but not signalled loses
nothing: every API process sweeps for events unsignalled for `SWEEP_AFTER` and delivers
them (workflows ignore an event id they have seen, so a second delivery is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from db.bulk import on_postgresql
from db.models import EngagementEvent, Enrollment, Lead, utcnow
from db.writes import is_transient_conflict
from starter.services.errors import LeadNotFound
from starter.services.events import EventIn, EventResult
from starter.services.journey_signals import signal_journeys
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import ENGAGEMENT_SIGNAL, EngagementSignal, LeadNudge

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # at most this many requests' rows in one transaction
DISPATCH_WIDTH = 32  # leads signalled at once
SWEEP_EVERY = 10.0  # seconds between sweeps for undelivered events
SWEEP_AFTER = timedelta(seconds=30)  # an event unsignalled this long is swept …
SWEEP_WITHIN = timedelta(days=1)  # … unless older than this (news that old is no news)
SWEEP_ROWS = 500
MARK_TRIES = 20  # passes at marking events signalled whose rows a rescore holds …
REMARK_EVERY = 0.5  # … one every this many seconds
_RETRY_PAUSE = 0.2  # one quick retry of a failed signal; after that, the sweep's turn


@dataclass(frozen=True)
class _Stored:
    """An event to signal: its lead, id, type, moment."""

    lead_id: str
    event_id: str
    type: str
    occurred_at: datetime


@dataclass
class _Request:
    event: EventIn
    answer: asyncio.Future[EventResult]


class EventIntake:
    """One API process's event writer and dispatcher (`start()` in the app's lifespan,
    `close()` at shutdown)."""

    def __init__(
        self, client: Client, sessions: async_sessionmaker[AsyncSession], lifecycle: LeadLifecycle
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._lifecycle = lifecycle
        self._requests: asyncio.Queue[_Request] = asyncio.Queue()
        self._to_signal: asyncio.Queue[list[_Stored]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        # Stored and on their way to the workflows from this process: a repeat meanwhile
        # is not signalled a second time.
        self._in_flight: set[tuple[str, str]] = set()
        self._busy = 0  # batches being written or delivered right now
        self._unmarked: list[tuple[tuple[str, str], int]] = []  # (key, passes so far)

    def start(self) -> None:
        """Run the writer, the dispatcher and the sweep."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_forever()),
            loop.create_task(self._dispatch_forever()),
            loop.create_task(self._sweep_forever()),
            loop.create_task(self._remark_forever()),
        ]

    async def close(self, within: float = 10.0) -> None:
        """Write what is queued and signal what was written, for at most `within` seconds
        (what is left is swept by any API process), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while True:
                    idle = self._requests.empty() and self._to_signal.empty()
                    if idle and not self._busy:
                        break
                    await asyncio.sleep(0.02)  # polled: two queues and their workers
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def record(self, event: EventIn) -> EventResult:
        """Store the event (once) and answer when it is committed; it is signalled to the
        lead's running journeys (`delivered_to`) and its lead workflow right after.
        A repeat of a signalled event is not signalled again (`delivered_to` empty)."""
        answer: asyncio.Future[EventResult] = asyncio.get_running_loop().create_future()
        await self._requests.put(_Request(event, answer))
        return await answer

    # --- group commit -----------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._requests.get()]
            while len(batch) < BATCH_ROWS and not self._requests.empty():
                batch.append(self._requests.get_nowait())
            self._busy += 1
            try:
                await self._write_batch(batch)
            finally:
                self._busy -= 1

    async def _write_batch(self, batch: list[_Request]) -> None:
        """Write the batch in one transaction; if that fails, each request on its own, so
        that one failing row (or a deadlock with another process) fails only itself."""
        try:
            results, stored = await self._write(batch)
        except Exception as exc:
            # A row the database refuses (bad data, a conflict, a deadlock with another
            # process) fails only itself; a lost connection fails them all.
            row_specific = isinstance(exc, DBAPIError) and (
                is_transient_conflict(exc) or not isinstance(exc, OperationalError | InterfaceError)
            )
            if len(batch) == 1 or not row_specific:  # the database is down: all fail
                log.warning("storing %d events failed: %s", len(batch), exc)
                for request in batch:
                    if not request.answer.done():
                        request.answer.set_exception(exc)
                return
            log.info("storing %d events together failed (%s): one by one", len(batch), exc)
            for request in batch:
                await self._write_batch([request])
            return
        if stored:
            self._to_signal.put_nowait(stored)
        for request, result in zip(batch, results, strict=True):
            if request.answer.done():  # the request was cancelled: it is stored anyway
                continue
            if isinstance(result, Exception):
                request.answer.set_exception(result)
            else:
                request.answer.set_result(result)

    async def _write(
        self, batch: list[_Request]
    ) -> tuple[list[EventResult | Exception], list[_Stored]]:
        """One transaction for the batch: the leads checked, new rows inserted, repeats
        looked up, the leads' running journeys read."""
        lead_ids = {str(r.event.lead_id) for r in batch}
        async with self._sessions() as session:
            live = set(
                (
                    await session.execute(
                        select(Lead.id).where(Lead.id.in_(lead_ids), Lead.erased_at.is_(None))
                    )
                ).scalars()
            )
            rows = _unique_rows(r.event for r in batch if str(r.event.lead_id) in live)
            new = await _insert_new(session, rows)
            repeats = [key for key in rows if key not in new]
            # Which repeats are on their way from this process, taken *before* reading which
            # are unsignalled: a delivery leaves `_in_flight` only after its mark commits, so
            # a key gone from it by now is marked in what the read sees. (Checked after the
            # read, a mark committed in between looked unsignalled and not in flight, and
            # the repeat was signalled again.)
            in_flight = {key for key in repeats if key in self._in_flight}
            unsignalled = await _unsignalled(session, repeats)
            journeys = await _running_journeys(session, live)
            await session.commit()
        results: list[EventResult | Exception] = []
        stored: list[_Stored] = []
        answered: set[tuple[str, str]] = set()
        for request in batch:
            event = request.event
            key = (str(event.lead_id), event.event_id)
            if key[0] not in live:
                results.append(LeadNotFound(key[0]))
                continue
            duplicate = key not in new or key in answered  # the same id twice in a batch
            # New, or a repeat of one stored but never signalled (its first request's
            # process died before): signalled now. A repeat of one signalled, or on its
            # way from this process, is not.
            deliver = not duplicate or (
                key in unsignalled and key not in in_flight and key not in self._in_flight
            )
            if deliver:
                self._in_flight.add(key)
                stored.append(_Stored(key[0], event.event_id, event.type.value, event.occurred_at))
            answered.add(key)
            results.append(
                EventResult(
                    lead_id=key[0],
                    event_id=event.event_id,
                    duplicate=duplicate,
                    delivered_to=journeys.get(key[0], []) if deliver else [],
                )
            )
        return results, stored

    # --- signals ----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            events = await self._to_signal.get()
            while not self._to_signal.empty():
                events.extend(self._to_signal.get_nowait())
            self._busy += 1
            try:
                await self.deliver(events)
            except Exception as exc:  # the database failed: the sweep delivers them
                log.warning("%d events not delivered: %s", len(events), exc)
            finally:
                self._busy -= 1

    async def deliver(self, events: list[_Stored]) -> None:
        """Signal the events to their leads' workflows (a lead's in order, leads side by
        side), retrying a failure once; mark the delivered ones as signalled. What fails
        is left to the sweep."""
        by_lead: dict[str, list[_Stored]] = defaultdict(list)
        for event in events:
            by_lead[event.lead_id].append(event)
        gate = asyncio.Semaphore(DISPATCH_WIDTH)
        delivered: list[_Stored] = []
        held: set[tuple[str, str]] = set()
        try:
            async with self._sessions() as session:
                journeys = await _running_journeys(session, set(by_lead))

            async def one_lead(lead_id: str, its: list[_Stored]) -> None:
                async with gate:
                    for event in its:
                        if await self._signal(event, journeys.get(lead_id, [])):
                            delivered.append(event)

            await asyncio.gather(*(one_lead(lead, its) for lead, its in by_lead.items()))
            if delivered:
                held = set(await self._mark_signalled(delivered))
        finally:
            # Delivered and marked, or not delivered (the sweep's): no longer in flight.
            # Delivered but not yet marked stays so until the re-marker is done with it:
            # a repeat meanwhile must not be signalled again.
            self._in_flight.difference_update(
                key for key in ((e.lead_id, e.event_id) for e in events) if key not in held
            )

    async def _signal(self, event: _Stored, journeys: list[str]) -> bool:
        signal = EngagementSignal(
            event_id=event.event_id, type=event.type, occurred_at=event.occurred_at
        )
        for attempt in (1, 2):
            try:
                await signal_journeys(self._client, journeys, ENGAGEMENT_SIGNAL, signal)
                await self._lifecycle.nudge(
                    event.lead_id, LeadNudge(cause=f"event {event.type}", event_id=event.event_id)
                )
                return True
            except Exception as exc:  # Temporal unreachable: once more, then the sweep's
                if attempt == 2:
                    log.warning("event %s of %s not signalled: %s", event.event_id,
                                event.lead_id, exc)  # fmt: skip
                    return False
                await asyncio.sleep(_RETRY_PAUSE)
        return False

    async def _mark_signalled(self, events: list[_Stored]) -> list[tuple[str, str]]:
        """Mark the events as signalled without ever waiting for a row lock: a rescore
        marking the same rows tallied holds them until its commit, and a wait here joined
        chains of waits (rescores queue on their account's row). A row held is handed to
        the re-marker, so the dispatcher goes on with the next batch at once; returns
        those keys."""
        left = await self._mark([(e.lead_id, e.event_id) for e in events])
        self._unmarked.extend((key, 0) for key in left)
        return left

    async def _remark_forever(self) -> None:
        """Mark what `_mark_signalled` found held, every `REMARK_EVERY` seconds; a row
        still held after `MARK_TRIES` passes is left to the sweep (which delivers it again:
        the workflows ignore an id they have seen)."""
        while True:
            await asyncio.sleep(REMARK_EVERY)
            if not self._unmarked:
                continue
            tries = dict(self._unmarked)
            self._unmarked = []
            try:
                left = await self._mark(list(tries))
            except Exception as exc:
                log.warning("marking %d events failed: %s", len(tries), exc)
                left = list(tries)
            again = [(key, tries[key] + 1) for key in left if tries[key] + 1 < MARK_TRIES]
            self._unmarked.extend(again)
            retried = {key for key, _ in again}
            self._in_flight.difference_update(key for key in tries if key not in retried)
            if len(again) < len(left):
                log.info("%d events left unmarked (rows held): the sweep's", len(left) - len(again))

    async def _mark(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Mark those of `keys` whose rows are free now; the others."""
        marked: set[tuple[str, str]] = set()
        async with self._sessions() as session:
            for start in range(0, len(keys), SWEEP_ROWS):
                chunk = keys[start : start + SWEEP_ROWS]
                free = (
                    select(EngagementEvent.id)
                    .where(tuple_(EngagementEvent.lead_id, EngagementEvent.event_id).in_(chunk))
                    .with_for_update(skip_locked=True)
                )
                done = await session.execute(
                    update(EngagementEvent)
                    .where(EngagementEvent.id.in_(free.scalar_subquery()))
                    .values(signalled_at=utcnow())
                    .returning(EngagementEvent.lead_id, EngagementEvent.event_id)
                )
                marked.update((lead, event_id) for lead, event_id in done)
            await session.commit()
        return [key for key in keys if key not in marked]

    # --- the sweep --------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("sweeping undelivered events failed: %s", exc)

    async def sweep(self, older_than: timedelta = SWEEP_AFTER) -> int:
        """Deliver events stored at least `older_than` ago (and within `SWEEP_WITHIN`) and
        never signalled (a process died between the two); returns how many. Every API
        process sweeps the same rows: a second delivery is ignored by the workflows."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    EngagementEvent.lead_id, EngagementEvent.event_id,
                    EngagementEvent.type, EngagementEvent.occurred_at,
                )
                .join(Lead, Lead.id == EngagementEvent.lead_id)
                .where(
                    EngagementEvent.signalled_at.is_(None),
                    EngagementEvent.received_at < utcnow() - older_than,
                    EngagementEvent.received_at > utcnow() - SWEEP_WITHIN,
                    Lead.erased_at.is_(None),  # an erased lead's workflows are over
                )
                .order_by(EngagementEvent.received_at.desc())  # a crash's leftovers first
                .limit(SWEEP_ROWS)
            )  # fmt: skip
            found = [_Stored(lead, event_id, kind, at) for lead, event_id, kind, at in rows]
        if found:
            log.info("delivering %d events stored but never signalled", len(found))
            await self.deliver(found)
        return len(found)


def _unique_rows(events: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows to insert, one per (lead, event id): the first of a repeated id wins."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    now = utcnow()
    # In key order: two processes' batches then take the unique index's locks in the same
    # order, and can't deadlock on keys both hold.
    for event in sorted(events, key=lambda e: (str(e.lead_id), e.event_id)):
        key = (str(event.lead_id), event.event_id)
        rows.setdefault(key, {
            "lead_id": key[0], "event_id": key[1], "type": event.type.value,
            "occurred_at": event.occurred_at, "received_at": now,
            "properties": dict(event.properties), "tallied": False,
        })  # fmt: skip
    return rows


async def _insert_new(
    session: AsyncSession, rows: dict[tuple[str, str], dict[str, Any]]
) -> set[tuple[str, str]]:
    """Insert the rows, skipping (lead, event id) pairs already stored; the keys inserted."""
    if not rows:
        return set()
    # PostgreSQL, or the demo's SQLite: both have ON CONFLICT.
    statement: Any = pg_insert if on_postgresql(session) else sqlite_insert
    query = (
        statement(EngagementEvent)
        .on_conflict_do_nothing(index_elements=["lead_id", "event_id"])
        .returning(EngagementEvent.lead_id, EngagementEvent.event_id)
    )
    inserted = await session.execute(query, list(rows.values()))
    return {(lead, event_id) for lead, event_id in inserted}


async def _unsignalled(session: AsyncSession, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these stored events never reached the workflows."""
    if not keys:
        return set()
    found = await session.execute(
        select(EngagementEvent.lead_id, EngagementEvent.event_id).where(
            tuple_(EngagementEvent.lead_id, EngagementEvent.event_id).in_(keys),
            EngagementEvent.signalled_at.is_(None),
        )
    )
    return {(lead, event_id) for lead, event_id in found}


async def _running_journeys(session: AsyncSession, lead_ids: set[str]) -> dict[str, list[str]]:
    """The workflow ids of each lead's journeys not completed."""
    if not lead_ids:
        return {}
    rows = await session.execute(
        select(Enrollment.lead_id, Enrollment.workflow_id)
        .where(Enrollment.lead_id.in_(lead_ids), Enrollment.completed_at.is_(None))
        .order_by(Enrollment.enrolled_at)
    )
    journeys: dict[str, list[str]] = defaultdict(list)
    for lead_id, workflow_id in rows:
        journeys[lead_id].append(workflow_id)
    return journeys
