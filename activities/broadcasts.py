"""Broadcast activities: fix the audience, send batches over reused SMTP connections, pick
an A/B winner, record the status. Each message is sent exactly once by the same commit
point as a journey email: its outbox row turns `sent` in the transaction whose COMMIT
goes out with the final dot; consent and the topic are checked in that very statement."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from sqlalchemy import (
    DateTime,
    String,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import (
    PICK_WINNER,
    RECORD_BROADCAST_STATUS,
    SEND_BROADCAST_BATCH,
    SNAPSHOT_AUDIENCE,
    PickWinnerRequest,
    PickWinnerResult,
    RecordBroadcastStatusRequest,
    SendBroadcastBatchRequest,
    SendBroadcastBatchResult,
    SnapshotAudienceRequest,
    SnapshotAudienceResult,
)
from activities.email import EmailActivities, message_id_for
from activities.outbox_confirmation import SendConfirmations, set_outbox
from activities.smtp_delivery import PermanentFailure, connect, log_in, send_on
from db.commit_point import commit_then
from db.email_links import store_links
from db.models import (
    Broadcast,
    BroadcastRecipient,
    ConsentRecord,
    EngagementEvent,
    Lead,
    OutboxEmail,
    SegmentMembership,
    as_utc,
    utcnow,
)
from db.suppression_list import SuppressionList
from db.topic_subscriptions import topic_holds, unsubscribed_among
from db.writes import insert_many_ignoring_conflicts
from journeys.ab_testing import VariantResult, pick_winner
from journeys.broadcasts import (
    MAX_ATTEMPTS,
    AbMetric,
    AbTestSpec,
    BroadcastStatus,
    RecipientFacts,
    RecipientStatus,
    SkipReason,
    broadcast_workflow_id,
    local_due_at,
    retry_delay,
    sample_size,
    skip_reason,
    variant_of,
)
from journeys.consent import ConsentAction, ConsentStatus, SuppressionReason
from journeys.link_tracking import TrackedLink
from journeys.outbox import OutboxStatus
from journeys.rendering import render_email, render_subject
from journeys.timezones import lead_zone
from starter.settings import Settings

log = logging.getLogger(__name__)

_OPEN = (RecipientStatus.PENDING.value, RecipientStatus.DEFERRED.value)
_INSERT_CHUNK = 5000


class _NotSending(Exception):
    """At the commit point the message turned out not to be ours to send (sent by an
    earlier attempt, or the lead withdrew consent a moment ago): no dot goes out."""


def _key(broadcast_id: str, lead_id: str) -> str:
    return f"broadcast:{broadcast_id}:{lead_id}"


def _shuffled(broadcast_id: str, lead_id: str) -> bytes:
    # A fixed pseudo-random order per broadcast: the A/B sample is a fair draw.
    return hashlib.sha256(f"{broadcast_id}:{lead_id}".encode()).digest()


@dataclass
class _Throttle:
    """At most `rate` sends a second across all connections (None: no limit)."""

    rate: float | None
    _next: float = 0.0

    async def wait(self) -> None:
        if not self.rate:
            return
        loop = asyncio.get_running_loop()
        slot = max(loop.time(), self._next)
        self._next = slot + 1 / self.rate
        await asyncio.sleep(slot - loop.time())


@dataclass
class _Item:
    recipient: BroadcastRecipient
    lead: Lead
    outbox_id: int
    message_id: str


@dataclass
class _Built:
    item: _Item
    message: EmailMessage
    subject: str
    links: list[TrackedLink]


@dataclass
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, status: RecipientStatus) -> None:
        self.counts[status.value] += 1


# A batch tells Temporal it is alive this often (its heartbeat timeout is a few times
# longer): a worker killed mid-batch is noticed, and the batch retried, within seconds.
HEARTBEAT_SECONDS = 2.0


async def _heartbeats(tally: _Tally) -> None:
    while True:
        activity.heartbeat(dict(tally.counts))
        await asyncio.sleep(HEARTBEAT_SECONDS)


class BroadcastActivities:
    """Broadcast sending with injected settings and sessions; rendering and the message
    itself are the email activities' (one way to build a marketing email)."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker, email: EmailActivities
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._email = email
        self._suppressions = SuppressionList(settings.require_secret_key())
        self._confirmations = SendConfirmations(sessions)

    # --- the audience ---------------------------------------------------------------

    @activity.defn(name=SNAPSHOT_AUDIENCE.name)
    async def snapshot_audience(self, request: SnapshotAudienceRequest) -> SnapshotAudienceResult:
        """Fix the audience once, in a shuffled order, each recipient due at the start or
        at the broadcast's local time in the recipient's zone."""
        async with self._sessions() as session:
            broadcast = await session.get(Broadcast, request.broadcast_id, with_for_update=True)
            assert broadcast is not None, "the API creates the row before the workflow"
            ab = AbTestSpec.model_validate(broadcast.ab_test) if broadcast.ab_test else None
            if broadcast.audience is not None:  # a retry: fixed already
                sample = await session.scalar(
                    select(func.count()).where(
                        BroadcastRecipient.broadcast_id == broadcast.id,
                        BroadcastRecipient.variant.is_not(None),
                    )
                )
                return SnapshotAudienceResult(audience=broadcast.audience, sample=sample or 0)
            leads = await self._audience(session, broadcast)
            leads.sort(key=lambda row: _shuffled(broadcast.id, row[0]))
            variants = len(ab.subjects) if ab else 0
            sample = sample_size(len(leads), ab.sample_percent, variants) if ab else 0
            start = max(as_utc(broadcast.send_at) or request.now, request.now)
            at = time.fromisoformat(broadcast.local_time) if broadcast.local_time else None
            default_zone = self._settings.send_policy.default_timezone
            rows = [
                {
                    "broadcast_id": broadcast.id,
                    "position": position,
                    "lead_id": lead_id,
                    "variant": variant_of(position, sample, variants) if variants else None,
                    "due_at": local_due_at(start, at, lead_zone(zone, country, default_zone)),
                    "status": RecipientStatus.PENDING.value,
                    "attempts": 0,
                }
                for position, (lead_id, zone, country) in enumerate(leads)
            ]
            for begin in range(0, len(rows), _INSERT_CHUNK):
                await session.execute(
                    insert(BroadcastRecipient), rows[begin : begin + _INSERT_CHUNK]
                )
            broadcast.audience = len(rows)
            if broadcast.status == BroadcastStatus.SCHEDULED.value:  # not paused meanwhile
                broadcast.status = BroadcastStatus.SENDING.value
            broadcast.started_at = request.now
            await session.commit()
        log.info("broadcast %s: audience %d, sample %d", request.broadcast_id, len(rows), sample)
        return SnapshotAudienceResult(audience=len(rows), sample=sample)

    async def _audience(
        self, session: AsyncSession, broadcast: Broadcast
    ) -> list[tuple[str, str | None, str | None]]:
        """(lead id, timezone, country) of every lead in the audience: the segment's
        members, or every lead with confirmed consent subscribed to the topic."""
        query = select(Lead.id, Lead.timezone, Lead.country).where(Lead.erased_at.is_(None))
        if broadcast.segment is not None:
            query = query.join(SegmentMembership, SegmentMembership.lead_id == Lead.id).where(
                SegmentMembership.segment == broadcast.segment
            )
        else:
            query = query.where(Lead.consent_status == ConsentStatus.CONFIRMED.value)
        found = [(str(i), z, c) for i, z, c in (await session.execute(query)).all()]
        if broadcast.segment is not None:
            return found
        out: set[str] = set()
        for begin in range(0, len(found), _INSERT_CHUNK):
            chunk = [lead_id for lead_id, _, _ in found[begin : begin + _INSERT_CHUNK]]
            out |= await unsubscribed_among(session, chunk, broadcast.topic)
        return [row for row in found if row[0] not in out]

    # --- sending ---------------------------------------------------------------------

    @activity.defn(name=SEND_BROADCAST_BATCH.name)
    async def send_batch(self, request: SendBroadcastBatchRequest) -> SendBroadcastBatchResult:
        """Send the next due messages: skip whoever may not get one now (counted by
        reason), write the others' outbox rows in one insert, send them over a few SMTP
        connections at the broadcast's rate, each committed as sent with its final dot."""
        tally = _Tally()
        beating = asyncio.create_task(_heartbeats(tally))
        try:
            remaining, next_due = await self._send_batch(request, tally)
        finally:
            beating.cancel()
        counts = tally.counts
        return SendBroadcastBatchResult(
            sent=counts["sent"], skipped=counts["skipped"], deferred=counts["deferred"],
            bounced=counts["bounced"], failed=counts["failed"], remaining=remaining,
            next_due_at=next_due,
        )  # fmt: skip

    async def _send_batch(
        self, request: SendBroadcastBatchRequest, tally: _Tally
    ) -> tuple[int, datetime | None]:
        async with self._sessions() as session:
            broadcast = await session.get(Broadcast, request.broadcast_id)
            assert broadcast is not None
            ab = AbTestSpec.model_validate(broadcast.ab_test) if broadcast.ab_test else None
            items = await self._prepare(session, broadcast, request, tally)
        subjects = ab.subjects if ab else []
        built: list[_Built] = []
        unbuildable: list[tuple[_Item, str]] = []
        for item in items:
            try:
                built.append(self._build(broadcast, item, subjects, request.winner))
            except Exception as exc:  # a template or subject that can't render for this lead
                unbuildable.append((item, f"not rendered: {type(exc).__name__}: {exc}"))
        async with self._sessions() as session:
            # The batch's links in one statement, before any message can be clicked.
            await store_links(session, [link for b in built for link in b.links])
            for item, reason in unbuildable:
                await self._failed(session, item, reason)
                tally.add(RecipientStatus.FAILED)
            await session.commit()
        queue: asyncio.Queue[_Built] = asyncio.Queue()
        for message in built:
            queue.put_nowait(message)
        rate = request.rate_per_second
        throttle = _Throttle(rate / request.partitions if rate else None)
        connections = max(1, min(self._settings.broadcast_connections, len(built)))
        # A task group: when one connection fails the batch, the others stop too, before
        # the batch's retry sends the same recipients.
        async with asyncio.TaskGroup() as group:
            for _ in range(connections if built else 0):
                group.create_task(self._connection(broadcast, queue, throttle, tally))
        async with self._sessions() as session:
            remaining, next_due = await self._left(session, broadcast.id, request)
        return remaining, next_due

    def _phase(self, broadcast_id: str, request: SendBroadcastBatchRequest) -> Any:
        """The open recipients of the request's phase and partition."""
        variant = BroadcastRecipient.variant
        return and_(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_(_OPEN),
            variant.is_not(None) if request.sample else variant.is_(None),
            BroadcastRecipient.position % request.partitions == request.partition,
        )

    async def _left(
        self, session: AsyncSession, broadcast_id: str, request: SendBroadcastBatchRequest
    ) -> tuple[int, datetime | None]:
        now = utcnow()
        phase = self._phase(broadcast_id, request)
        remaining = await session.scalar(
            select(func.count()).where(phase, BroadcastRecipient.due_at <= now)
        )
        next_due = await session.scalar(
            select(func.min(BroadcastRecipient.due_at)).where(
                phase, BroadcastRecipient.due_at > now
            )
        )
        return int(remaining or 0), as_utc(next_due)

    async def _prepare(
        self,
        session: AsyncSession,
        broadcast: Broadcast,
        request: SendBroadcastBatchRequest,
        tally: _Tally,
    ) -> list[_Item]:
        """The batch's recipients that may get the message now, with outbox rows; the
        others marked skipped with their reason."""
        now = utcnow()
        due = (
            await session.execute(
                select(BroadcastRecipient)
                .where(self._phase(broadcast.id, request), BroadcastRecipient.due_at <= now)
                .order_by(BroadcastRecipient.position)
                .limit(request.limit)
            )
        ).scalars()
        recipients = list(due)
        if not recipients:
            return []
        ids = [r.lead_id for r in recipients]
        leads = {
            lead.id: lead
            for lead in (await session.execute(select(Lead).where(Lead.id.in_(ids)))).scalars()
        }
        emails = [lead.email for lead in leads.values() if lead.email]
        suppressed = await self._suppressions.suppressed_among(session, emails)
        holds = await topic_holds(session, ids, broadcast.topic, now)
        capped = await self._capped(session, ids, now) | set(holds.not_before)
        begun = await self._outbox_of(session, broadcast.id, ids)
        sendable: list[BroadcastRecipient] = []
        for recipient in recipients:
            lead = leads.get(recipient.lead_id)
            earlier = begun.get(recipient.lead_id)
            if earlier is not None and earlier[1] != OutboxStatus.PENDING:
                # An earlier attempt got as far as the server's answer: its row decides.
                status = (
                    RecipientStatus.SENT
                    if earlier[1] == OutboxStatus.SENT
                    else RecipientStatus.BOUNCED
                )
                recipient.status, recipient.outbox_id = status.value, earlier[0]
                tally.add(status)
                continue
            reason = skip_reason(
                RecipientFacts(
                    erased=lead is None or lead.erased_at is not None or lead.email is None,
                    consent_confirmed=lead is not None
                    and lead.consent_status == ConsentStatus.CONFIRMED.value,
                    suppressed=lead is not None and lead.email in suppressed,
                    topic_unsubscribed=recipient.lead_id in holds.unsubscribed,
                    capped=recipient.lead_id in capped,
                )
            )
            if reason is None:
                sendable.append(recipient)
            else:
                recipient.status, recipient.reason = RecipientStatus.SKIPPED.value, reason.value
                tally.add(RecipientStatus.SKIPPED)
        await self._write_outbox_rows(session, broadcast, sendable)
        rows = await self._outbox_of(session, broadcast.id, [r.lead_id for r in sendable])
        items = []
        for recipient in sendable:
            row_id, _, message_id = rows[recipient.lead_id]
            recipient.outbox_id = row_id
            items.append(_Item(recipient, leads[recipient.lead_id], row_id, message_id))
        await session.commit()
        return items

    async def _capped(self, session: AsyncSession, lead_ids: list[str], now: datetime) -> set[str]:
        """Leads that reached the marketing frequency cap (journeys and broadcasts)."""
        policy = self._settings.send_policy
        if policy.cap is None:
            return set()
        rows = await session.execute(
            select(OutboxEmail.lead_id)
            .where(
                OutboxEmail.lead_id.in_(lead_ids),
                OutboxEmail.status == OutboxStatus.SENT,
                OutboxEmail.sent_at > now - policy.cap_period,
                or_(
                    OutboxEmail.workflow_id.like("journey:%"),
                    OutboxEmail.workflow_id.like("broadcast:%"),
                ),
            )
            .group_by(OutboxEmail.lead_id)
            .having(func.count() >= policy.cap)
        )
        return {str(lead_id) for lead_id in rows.scalars()}

    async def _write_outbox_rows(
        self, session: AsyncSession, broadcast: Broadcast, recipients: list[BroadcastRecipient]
    ) -> None:
        """The recipients' outbox rows, pending, written in one insert (existing kept)."""
        mail_from = self._settings.mail_from
        values = [
            {
                "idempotency_key": _key(broadcast.id, r.lead_id),
                "lead_id": r.lead_id,
                "workflow_id": broadcast_workflow_id(broadcast.id),
                "step_id": "broadcast" if r.variant is None else f"variant-{r.variant}",
                "template": broadcast.template,
                "message_id": message_id_for(_key(broadcast.id, r.lead_id), mail_from),
                "status": OutboxStatus.PENDING,
                "created_at": utcnow(),
                "topic": broadcast.topic,
            }
            for r in recipients
        ]
        await insert_many_ignoring_conflicts(session, OutboxEmail, values)

    async def _outbox_of(
        self, session: AsyncSession, broadcast_id: str, lead_ids: list[str]
    ) -> dict[str, tuple[int, str, str]]:
        """lead id → (outbox id, status, Message-ID) of the broadcast's rows for them."""
        if not lead_ids:
            return {}
        keys = {_key(broadcast_id, lead_id): lead_id for lead_id in lead_ids}
        found = await session.execute(
            select(
                OutboxEmail.idempotency_key,
                OutboxEmail.id,
                OutboxEmail.status,
                OutboxEmail.message_id,
            ).where(OutboxEmail.idempotency_key.in_(list(keys)))
        )
        return {keys[k]: (i, s, m) for k, i, s, m in found.all()}

    async def _connection(
        self,
        broadcast: Broadcast,
        queue: asyncio.Queue[_Built],
        throttle: _Throttle,
        tally: _Tally,
    ) -> None:
        """One SMTP connection and one database session sending messages off `queue`."""
        client: aiosmtplib.SMTP | None = None
        async with self._sessions() as session:
            try:
                while not queue.empty():
                    built = queue.get_nowait()
                    if client is None:
                        client = connect(self._settings)
                        await client.connect()
                        await log_in(client, self._settings)
                    await throttle.wait()
                    status, reusable = await self._send_one(client, session, broadcast, built)
                    tally.add(status)
                    if not reusable:
                        client.close()  # its state is unknown (a DATA left open): start afresh
                        client = None
            finally:
                if client is not None:
                    try:
                        await client.quit()
                    except (aiosmtplib.SMTPException, OSError):
                        client.close()

    def _build(
        self, broadcast: Broadcast, item: _Item, subjects: list[str], winner: int | None
    ) -> _Built:
        """The message for `item`: rendered (the variant's or the winner's subject), its
        links tracked, headers and envelope as for any marketing email."""
        lead, recipient = item.lead, item.recipient
        assert lead.email is not None
        context = self._email.template_context_for(lead, item.outbox_id)
        rendered = render_email(broadcast.template, context)
        variant = recipient.variant if recipient.variant is not None else winner
        if variant is not None and variant < len(subjects):
            rendered = replace(rendered, subject=render_subject(subjects[variant], context))
        rendered, links = self._email.track(rendered, item.outbox_id, lead.id)
        headers = self._email.marketing_headers(lead.id, item.outbox_id, broadcast.topic)
        message = self._email.message_for(lead.email, item.message_id, rendered, headers)
        return _Built(item, message, rendered.subject, links)

    async def _send_one(
        self,
        client: aiosmtplib.SMTP,
        session: AsyncSession,
        broadcast: Broadcast,
        built: _Built,
    ) -> tuple[RecipientStatus, bool]:
        """Send one message; what became of it, and whether the connection can carry the
        next one (not after a DATA left open, a failure or a broken connection)."""
        item, recipient, lead = built.item, built.item.recipient, built.item.lead
        now = utcnow()
        params = {
            "outbox_id": item.outbox_id, "lead_id": lead.id, "topic": broadcast.topic,
            "subject": built.subject, "now": now, "broadcast_id": recipient.broadcast_id,
            "position": recipient.position,
        }  # fmt: skip

        async def commit(send_dot: Callable[[], None]) -> None:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":  # one round trip
                marked = (await connection.execute(_MARK_SENT, params)).first()
            else:
                marked = (await connection.execute(_MARK_OUTBOX_SENT, params)).first()
                if marked is not None:
                    await connection.execute(_MARK_RECIPIENT_SENT, params)
            if marked is None:
                await session.rollback()
                raise _NotSending
            await commit_then(session, send_dot)

        async def revert() -> None:
            # Both rows back in one transaction: the server didn't take the message.
            await session.rollback()
            await set_outbox(session, item.outbox_id, OutboxStatus.PENDING, sent_at=None)
            connection = await session.connection()
            await connection.execute(
                _recipient_update(recipient, RecipientStatus.PENDING, None, guarded=False)
            )
            await session.commit()

        async def confirm() -> None:
            await self._confirmations.confirm(
                _key(broadcast.id, lead.id), item.outbox_id, built.subject, now
            )

        try:
            await send_on(
                client, self._settings, built.message, commit=commit, revert=revert,
                confirm=confirm, envelope_from=self._email.return_path_for(item.outbox_id),
            )  # fmt: skip
        except _NotSending:
            return await self._not_sent(session, broadcast, recipient, item.outbox_id), False
        except PermanentFailure as failure:
            if not failure.about_recipient:  # the message was refused, not the address
                await session.rollback()
                await self._failed(session, item, f"refused: {failure}")
                await session.commit()
                return RecipientStatus.FAILED, False
            await self._bounced(session, recipient, item, str(failure))
            return RecipientStatus.BOUNCED, True
        except UnicodeError:  # an address SMTP without SMTPUTF8 can't carry: no retry heals it
            await session.rollback()
            await self._failed(session, item, "undeliverable address (not ASCII)")
            await session.commit()
            return RecipientStatus.FAILED, False
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as failure:
            return await self._deferred(session, recipient, str(failure)), False
        return RecipientStatus.SENT, True

    async def _set_recipient(
        self,
        session: AsyncSession,
        recipient: BroadcastRecipient,
        status: RecipientStatus,
        reason: str | None,
        **more: Any,
    ) -> None:
        connection = await session.connection()
        await connection.execute(_recipient_update(recipient, status, reason, **more))

    async def _not_sent(
        self, session: AsyncSession, broadcast: Broadcast, recipient: BroadcastRecipient,
        outbox_id: int,
    ) -> RecipientStatus:  # fmt: skip
        """The send wasn't recorded: sent by an earlier attempt, or the lead opted out
        (of everything or of the topic) a moment ago — which one, as of now."""
        outbox = await session.get(OutboxEmail, outbox_id, populate_existing=True)
        if outbox is not None and outbox.status == OutboxStatus.SENT:
            await self._set_recipient(session, recipient, RecipientStatus.SENT, None)
            await session.commit()
            return RecipientStatus.SENT
        out = await unsubscribed_among(session, [recipient.lead_id], broadcast.topic)
        lead = await session.get(Lead, recipient.lead_id, populate_existing=True)
        confirmed = lead is not None and lead.consent_status == ConsentStatus.CONFIRMED.value
        eligible = confirmed and lead is not None and lead.erased_at is None
        if eligible and recipient.lead_id not in out:
            # Neither sent nor refused: another attempt held the row and gave it back.
            return await self._deferred(session, recipient, "held by another attempt")
        reason = (
            SkipReason.TOPIC_UNSUBSCRIBED
            if confirmed and recipient.lead_id in out
            else SkipReason.ERASED
            if lead is None or lead.erased_at is not None
            else SkipReason.NO_CONSENT
        )
        await self._set_recipient(session, recipient, RecipientStatus.SKIPPED, reason.value)
        await session.commit()
        return RecipientStatus.SKIPPED

    async def _bounced(
        self, session: AsyncSession, recipient: BroadcastRecipient, item: _Item, failure: str
    ) -> None:
        await session.rollback()
        await set_outbox(session, item.outbox_id, OutboxStatus.BOUNCED)
        await self._set_recipient(session, recipient, RecipientStatus.BOUNCED, failure[:200])
        await session.execute(
            update(Lead)
            .where(Lead.id == item.lead.id)
            .values(consent_status=ConsentStatus.BOUNCED.value)
        )
        assert item.lead.email is not None
        await self._suppressions.renew(session, item.lead.email, SuppressionReason.BOUNCED)
        session.add(
            ConsentRecord(
                lead_id=item.lead.id, action=ConsentAction.BOUNCED.value, source=failure[:200]
            )
        )
        await session.commit()

    async def _failed(self, session: AsyncSession, item: _Item, reason: str) -> None:
        """No retry will help this message (in the caller's transaction); the address is
        not to blame, so nothing is suppressed."""
        await set_outbox(session, item.outbox_id, OutboxStatus.FAILED)
        await self._set_recipient(session, item.recipient, RecipientStatus.FAILED, reason[:200])

    async def _deferred(
        self, session: AsyncSession, recipient: BroadcastRecipient, failure: str
    ) -> RecipientStatus:
        await session.rollback()
        attempts = recipient.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._set_recipient(
                session, recipient, RecipientStatus.FAILED, failure[:200], attempts=attempts
            )
            await session.commit()
            return RecipientStatus.FAILED
        due = utcnow() + retry_delay(
            attempts, timedelta(seconds=self._settings.broadcast_retry_seconds)
        )
        await self._set_recipient(
            session, recipient, RecipientStatus.DEFERRED, failure[:200], attempts=attempts,
            due_at=due,
        )  # fmt: skip
        await session.commit()
        return RecipientStatus.DEFERRED

    # --- the A/B test and the status ---------------------------------------------------

    @activity.defn(name=PICK_WINNER.name)
    async def pick_winner(self, request: PickWinnerRequest) -> PickWinnerResult:
        """The subject with the most unique opens (or clicks) per recipient of the sample,
        with a two-proportion test against the runner-up; recorded on the broadcast."""
        async with self._sessions() as session:
            broadcast = await session.get(Broadcast, request.broadcast_id, with_for_update=True)
            assert broadcast is not None and broadcast.ab_test is not None
            ab = AbTestSpec.model_validate(broadcast.ab_test)
            results = await self._variant_results(session, broadcast.id, ab)
            outcome = pick_winner(results)
            verdict = outcome.verdict(ab.subjects)
            broadcast.ab_result = {
                "winner": outcome.winner,
                "subject": ab.subjects[outcome.winner],
                "metric": ab.metric.value,
                "variants": [
                    {"variant": r.variant, "subject": ab.subjects[r.variant],
                     "recipients": r.recipients, "engaged": r.engaged, "rate": r.rate}
                    for r in results
                ],
                "lift_points": outcome.lift,
                "p_value": outcome.p_value,
                "significant": outcome.significant,
                "verdict": verdict,
            }  # fmt: skip
            if broadcast.local_time:
                await self._due_again(session, broadcast)
            await session.commit()
        return PickWinnerResult(
            winner=outcome.winner, significant=outcome.significant, verdict=verdict
        )

    async def _due_again(self, session: AsyncSession, broadcast: Broadcast) -> None:
        """After the sample and the wait, the rest's local send time is the next one from
        now (the times fixed at the start have passed while the sample went out)."""
        assert broadcast.local_time is not None
        at, now = time.fromisoformat(broadcast.local_time), utcnow()
        default_zone = self._settings.send_policy.default_timezone
        rows = await session.execute(
            select(BroadcastRecipient.position, Lead.timezone, Lead.country)
            .join(Lead, Lead.id == BroadcastRecipient.lead_id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast.id,
                BroadcastRecipient.variant.is_(None),
                BroadcastRecipient.status == RecipientStatus.PENDING.value,
            )
        )
        due = [
            {"b_id": broadcast.id, "b_position": position,
             "due": local_due_at(now, at, lead_zone(zone, country, default_zone))}
            for position, zone, country in rows.all()
        ]  # fmt: skip
        for begin in range(0, len(due), _INSERT_CHUNK):
            await (await session.connection()).execute(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == bindparam("b_id"),
                    BroadcastRecipient.position == bindparam("b_position"),
                )
                .values(due_at=bindparam("due")),
                due[begin : begin + _INSERT_CHUNK],
            )

    async def _variant_results(
        self, session: AsyncSession, broadcast_id: str, ab: AbTestSpec
    ) -> list[VariantResult]:
        sent = dict(
            (
                await session.execute(
                    select(BroadcastRecipient.variant, func.count())
                    .where(
                        BroadcastRecipient.broadcast_id == broadcast_id,
                        BroadcastRecipient.variant.is_not(None),
                        BroadcastRecipient.status == RecipientStatus.SENT.value,
                    )
                    .group_by(BroadcastRecipient.variant)
                )
            ).all()
        )
        outbox_id = cast(BroadcastRecipient.outbox_id, String)
        event_id = (
            EngagementEvent.event_id == literal("open-") + outbox_id
            if ab.metric == AbMetric.OPENS
            else EngagementEvent.event_id.like(literal("click-") + outbox_id + "-%")
        )
        engaged = dict(
            (
                await session.execute(
                    select(
                        BroadcastRecipient.variant,
                        func.count(func.distinct(BroadcastRecipient.lead_id)),
                    )
                    .join(
                        EngagementEvent,
                        and_(EngagementEvent.lead_id == BroadcastRecipient.lead_id, event_id),
                    )
                    .where(
                        BroadcastRecipient.broadcast_id == broadcast_id,
                        BroadcastRecipient.variant.is_not(None),
                    )
                    .group_by(BroadcastRecipient.variant)
                )
            ).all()
        )
        return [
            VariantResult(variant=v, recipients=sent.get(v, 0), engaged=engaged.get(v, 0))
            for v in range(len(ab.subjects))
        ]

    @activity.defn(name=RECORD_BROADCAST_STATUS.name)
    async def record_status(self, request: RecordBroadcastStatusRequest) -> None:
        """Record where the broadcast stands (the workflow decides; this writes it)."""
        status = BroadcastStatus(request.status)
        finished = status in (BroadcastStatus.DONE, BroadcastStatus.CANCELLED)
        final = (BroadcastStatus.DONE.value, BroadcastStatus.CANCELLED.value)
        async with self._sessions() as session:
            await session.execute(
                update(Broadcast)
                # A pause recorded late never hides that a broadcast finished.
                .where(Broadcast.id == request.broadcast_id, Broadcast.status.not_in(final))
                .values(status=status.value, **({"finished_at": request.now} if finished else {}))
            )
            await session.commit()


# Recording a send, in the transaction whose COMMIT goes out with the final dot. Consent
# and the topic are checked in the very statement: an unsubscribe committed a moment ago
# stops the message. Plain SQL: it runs once per message, and needs no ORM.
_OUTBOX_SENT = """
    UPDATE email_outbox SET status = 'sent', subject = :subject, sent_at = :now
    WHERE id = :outbox_id AND status = 'pending'
      AND EXISTS (SELECT 1 FROM leads WHERE id = :lead_id AND consent_status = 'confirmed'
                  AND erased_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM topic_subscriptions WHERE lead_id = :lead_id
                      AND topic = :topic AND NOT subscribed)
    RETURNING id
"""
_RECIPIENT_SENT = """
    UPDATE broadcast_recipients SET status = 'sent', reason = NULL
    WHERE broadcast_id = :broadcast_id AND position = :position
"""
_NOW = bindparam("now", type_=DateTime(timezone=True))  # stored as the ORM stores it
_MARK_SENT = text(
    f"WITH sent AS ({_OUTBOX_SENT}) {_RECIPIENT_SENT} AND EXISTS (SELECT 1 FROM sent) "
    "RETURNING position"
).bindparams(_NOW)
_MARK_OUTBOX_SENT = text(_OUTBOX_SENT).bindparams(_NOW)
_MARK_RECIPIENT_SENT = text(_RECIPIENT_SENT)


def _recipient_update(
    recipient: BroadcastRecipient,
    status: RecipientStatus,
    reason: str | None,
    *,
    guarded: bool = True,
    **more: Any,
) -> Any:
    """A Core UPDATE of one recipient's row (no ORM bookkeeping: one per message);
    `guarded`: only while it is still open, so an overlapping attempt's `sent` stands."""
    statement = update(BroadcastRecipient).where(
        BroadcastRecipient.broadcast_id == recipient.broadcast_id,
        BroadcastRecipient.position == recipient.position,
    )
    if guarded:
        statement = statement.where(BroadcastRecipient.status.in_(_OPEN))
    return statement.values(status=status.value, reason=reason, **more)
