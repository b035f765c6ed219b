"""Acting on what came back (issue 16): a permanent bounce or a complaint suppresses the
address, with the report's evidence; automatic and human replies are recorded. Which
message a report is about comes from the return path it was sent to (VERP), never from
the report's own claims: a forged report names nothing and changes nothing."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import PROCESS_INBOUND, ProcessInboundRequest, ProcessInboundResult
from db.models import ConsentRecord, InboundMessage, Lead, OutboxEmail, utcnow
from db.suppression_list import SuppressionList
from journeys.consent import ConsentAction, ConsentStatus, SuppressionReason
from journeys.esp_feedback import InboundSource, PayloadInvalid, read_event
from journeys.inbound_mail import Classification, InboundKind, classify
from journeys.outbox import OutboxStatus
from starter.services.errors import LeadNotFound
from starter.services.events import EventIn, record_event
from starter.services.lead_workflow import LeadLifecycle
from starter.services.link_tokens import LinkTokens, TokenInvalid

log = logging.getLogger(__name__)


class InboundStatus:
    """Where an inbound row stands (`inbound_messages.status`)."""

    RECEIVED = "received"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"


class InboundActivities:
    """Inbound processing with an injected key and sessions."""

    def __init__(
        self, secret_key: str, sessions: async_sessionmaker, lifecycle: LeadLifecycle
    ) -> None:
        self._tokens = LinkTokens(secret_key)
        self._suppressions = SuppressionList(secret_key)
        self._sessions = sessions
        self._lifecycle = lifecycle

    @activity.defn(name=PROCESS_INBOUND.name)
    async def process_inbound(self, request: ProcessInboundRequest) -> ProcessInboundResult:
        """Classify the stored message and act on it, in one transaction with marking it
        processed (a retry finds it processed and does nothing again)."""
        async with self._sessions() as session:
            row = await session.get(InboundMessage, request.inbound_id, with_for_update=True)
            if row is None:
                return ProcessInboundResult(kind="missing", action="no such message")
            if row.status != InboundStatus.RECEIVED:
                return ProcessInboundResult(kind=row.kind or "", action="already processed")
            found, outbox = await self._read(session, row)
            lead = await session.get(Lead, outbox.lead_id) if outbox else None
            action = await self._act(session, found, outbox, lead)
            row.kind, row.processed_at = found.kind.value, utcnow()
            row.outbox_id = outbox.id if outbox else None
            row.lead_id = lead.id if lead and lead.erased_at is None else None
            row.status = (
                InboundStatus.QUARANTINED
                if found.kind == InboundKind.UNPARSEABLE
                else InboundStatus.PROCESSED
            )
            row.details = _evidence(found) | {"action": action}
            if lead is not None and lead.erased_at is not None:
                row.raw, row.recipients, row.details = b"", [], {"action": action}
            if found.kind == InboundKind.REPLY and lead is not None and outbox is not None:
                # Before the commit: a retry after a crash records it again, and the event's
                # id (the inbound row's) makes that the same event.
                await self._record_reply(request.inbound_id, lead.id, outbox.id)
            await session.commit()
        log.info("inbound %s: %s, %s", request.inbound_id, found.kind.value, action)
        return ProcessInboundResult(kind=found.kind.value, action=action)

    async def _record_reply(self, inbound_id: int, lead_id: str, outbox_id: int) -> None:
        """A person's reply is engagement: an `email_reply` event (scored, signalled to the
        lead's journeys, usable as an exit goal or in a segment)."""
        event = EventIn.model_validate(
            {"lead_id": lead_id, "type": "email_reply", "event_id": f"reply:{inbound_id}",
             "properties": {"outbox_id": outbox_id}}
        )  # fmt: skip
        try:
            await record_event(self._lifecycle.client, self._sessions, event, self._lifecycle)
        except LeadNotFound:  # erased meanwhile
            return

    async def _outbox_of(self, session: AsyncSession, recipients: list[str]) -> OutboxEmail | None:
        for address in recipients:
            try:
                outbox_id = self._tokens.read_return_path(address)
            except TokenInvalid:
                continue
            return await session.get(OutboxEmail, outbox_id)
        return None

    async def _read(
        self, session: AsyncSession, row: InboundMessage
    ) -> tuple[Classification, OutboxEmail | None]:
        """What the row says and which message of ours it is about: a mail by its return
        path; a provider's event by the signed reference it echoes (the same token), and
        only when the address it names is the lead's."""
        if row.source == InboundSource.SMTP:
            return classify(row.raw), await self._outbox_of(session, row.recipients)
        try:
            event = read_event(InboundSource(row.source), row.raw)
        except PayloadInvalid as exc:  # validated before it was stored: only a bug gets here
            return Classification(InboundKind.UNPARSEABLE, reason=exc.message[:300]), None
        outbox = await self._outbox_of(session, list(event.references))
        lead = await session.get(Lead, outbox.lead_id) if outbox else None
        if lead is not None and lead.email and event.recipients:
            if lead.email.lower() not in event.recipients:  # a reference to another address
                return event.classification, None
        return event.classification, outbox

    async def _act(
        self,
        session: AsyncSession,
        found: Classification,
        outbox: OutboxEmail | None,
        lead: Lead | None,
    ) -> str:
        if outbox is None or lead is None:
            return "names no message of ours: nothing changed"
        if lead.erased_at is not None:
            return "the lead is erased: nothing changed, nothing kept"
        if found.kind == InboundKind.BOUNCE and found.permanent_failure:
            outbox.status = OutboxStatus.BOUNCED
            await self._suppress(session, lead, ConsentStatus.BOUNCED, _bounce_evidence(found))
            return "permanent bounce: address suppressed"
        if found.kind == InboundKind.BOUNCE:
            return "transient bounce: counted"
        if found.kind == InboundKind.COMPLAINT:
            evidence = found.reason or "complaint (ARF)"  # a provider's names the provider
            await self._suppress(session, lead, ConsentStatus.COMPLAINED, evidence)
            return "complaint: unsubscribed and suppressed"
        if found.kind == InboundKind.AUTO_REPLY:
            return "automatic reply: noted"
        if found.kind == InboundKind.REPLY:
            return "reply: recorded as an email_reply event"
        if found.kind == InboundKind.DELIVERED:
            return "delivered: recorded"
        if found.kind == InboundKind.OTHER:
            return f"{found.reason or 'provider event'}: recorded, nothing to do"
        return "unparseable: quarantined"

    async def _suppress(
        self, session: AsyncSession, lead: Lead, status: ConsentStatus, evidence: str
    ) -> None:
        reason = SuppressionReason(status.value)
        lead.consent_status = status.value
        if lead.email:
            await self._suppressions.renew(session, lead.email, reason)
        action = (
            ConsentAction.BOUNCED if status == ConsentStatus.BOUNCED else ConsentAction.COMPLAINED
        )
        session.add(ConsentRecord(lead_id=lead.id, action=action.value, source=evidence[:200]))


def _bounce_evidence(found: Classification) -> str:
    status = next((s for s in found.statuses if s.permanent), None)
    if status is None:
        return "bounce (DSN)"
    return f"DSN {status.status} {status.diagnostic}".strip()


def _evidence(found: Classification) -> dict[str, object]:
    return {
        "subject": found.subject,
        "statuses": [
            {"status": s.status, "action": s.action, "diagnostic": s.diagnostic}
            for s in found.statuses
        ],
        "reason": found.reason,
    }
