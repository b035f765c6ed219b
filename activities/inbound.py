"""Acting on what came back (issue 16): a permanent bounce or a complaint suppresses the
address, with the report's evidence; automatic and human replies are recorded. Which
message a report is about comes from the return path it was sent to (VERP), never from
the report's own claims: a forged report names nothing and changes nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import PROCESS_INBOUND, ProcessInboundRequest, ProcessInboundResult
from activities.email import EmailActivities
from db.models import (
    Account,
    ConsentRecord,
    InboundMessage,
    Lead,
    OutboxEmail,
    as_utc,
    new_id,
    utcnow,
)
from db.suppression_list import SuppressionList
from db.writes import insert_ignoring_conflict
from journeys.bounce_policy import SoftBouncePolicy, TransientBounce, suppress_after_transient
from journeys.consent import ConsentAction, ConsentStatus, SuppressionReason
from journeys.esp_feedback import InboundSource, PayloadInvalid, read_event
from journeys.inbound_mail import Classification, InboundKind, classify
from journeys.out_of_office import deputy_address, hold_until, reply_text, return_date
from journeys.outbox import OutboxStatus
from journeys.timezones import lead_zone
from starter.services.deliverability import dsn_of, was_transient
from starter.services.errors import LeadNotFound
from starter.services.events import EventIn, record_event
from starter.services.lead_workflow import LeadLifecycle
from starter.services.link_tokens import LinkTokens, TokenInvalid
from starter.settings import Settings

log = logging.getLogger(__name__)


class InboundStatus:
    """Where an inbound row stands (`inbound_messages.status`)."""

    RECEIVED = "received"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"


# The source of a lead created from another lead's out-of-office reply (a deputy).
OUT_OF_OFFICE_SOURCE = "out-of-office"
# A Date header further than this from the moment the message arrived is not believed.
DATE_HEADER_TRUST = timedelta(days=2)


@dataclass
class _Acted:
    """What acting on a message did: the action's summary, details to keep with the row,
    and the notification (template, context) its lead's owner gets, if any."""

    action: str
    details: dict[str, Any] = field(default_factory=dict)
    notify: tuple[str, dict[str, Any]] | None = None


class InboundActivities:
    """Inbound processing with an injected key and sessions; `settings` gives the soft
    bounce policy, the default timezone and our own domains, `notices` tells sales reps."""

    def __init__(
        self,
        secret_key: str,
        sessions: async_sessionmaker,
        lifecycle: LeadLifecycle,
        *,
        settings: Settings | None = None,
        notices: EmailActivities | None = None,
    ) -> None:
        self._tokens = LinkTokens(secret_key)
        self._suppressions = SuppressionList(secret_key)
        self._sessions = sessions
        self._lifecycle = lifecycle
        self._notices = notices
        self._soft_bounces = settings.soft_bounce_policy if settings else SoftBouncePolicy()
        self._default_timezone = settings.default_timezone if settings else "UTC"
        own = [parseaddr(settings.mail_from)[1].rpartition("@")[2]] if settings else []
        if settings and settings.bounce_domain:
            own.append(settings.bounce_domain)
        self._own_domains = frozenset(d.lower() for d in own if d)

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
            acted = await self._act(session, found, outbox, lead, row)
            action = acted.action
            if acted.notify is not None and lead is not None:
                # Before the commit, keyed by the message: a retry after a crash tells the
                # rep once (the outbox key), never zero times.
                acted.details["owner_told"] = await self._tell_owner(
                    session, lead, row.id, *acted.notify
                )
            row.kind, row.processed_at = found.kind.value, utcnow()
            row.outbox_id = outbox.id if outbox else None
            row.lead_id = lead.id if lead and lead.erased_at is None else None
            row.status = (
                InboundStatus.QUARANTINED
                if found.kind == InboundKind.UNPARSEABLE
                else InboundStatus.PROCESSED
            )
            row.details = _evidence(found) | acted.details | {"action": action}
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
        row: InboundMessage,
    ) -> _Acted:
        if outbox is None or lead is None:
            return _Acted("names no message of ours: nothing changed")
        if lead.erased_at is not None:
            return _Acted("the lead is erased: nothing changed, nothing kept")
        if found.kind == InboundKind.BOUNCE and found.permanent_failure:
            outbox.status = OutboxStatus.BOUNCED
            await self._suppress(session, lead, ConsentStatus.BOUNCED, _bounce_evidence(found))
            return _Acted("permanent bounce: address suppressed", {"bounce": "permanent"})
        if found.kind == InboundKind.BOUNCE:
            return await self._transient_bounce(session, found, lead, outbox, row)
        if found.kind == InboundKind.COMPLAINT:
            evidence = found.reason or "complaint (ARF)"  # a provider's names the provider
            await self._suppress(session, lead, ConsentStatus.COMPLAINED, evidence)
            return _Acted("complaint: unsubscribed and suppressed")
        if found.kind == InboundKind.AUTO_REPLY:
            return await self._out_of_office(session, lead, row)
        if found.kind == InboundKind.REPLY:
            mail = {"subject": found.subject, "excerpt": reply_text(row.raw)[:500]}
            return _Acted("reply: recorded as an email_reply event", notify=("lead_replied", mail))
        if found.kind == InboundKind.DELIVERED:
            return _Acted("delivered: recorded")
        if found.kind == InboundKind.OTHER:
            return _Acted(f"{found.reason or 'provider event'}: recorded, nothing to do")
        return _Acted("unparseable: quarantined")

    async def _transient_bounce(
        self,
        session: AsyncSession,
        found: Classification,
        lead: Lead,
        outbox: OutboxEmail,
        row: InboundMessage,
    ) -> _Acted:
        """Count it; suppress once too many messages bounced transiently within the window
        (journeys/bounce_policy.py), with the reports as evidence."""
        received = as_utc(row.received_at) or utcnow()
        earlier = await session.execute(
            select(
                InboundMessage.outbox_id, InboundMessage.received_at, InboundMessage.details
            ).where(
                InboundMessage.lead_id == lead.id,
                InboundMessage.kind == InboundKind.BOUNCE.value,
                InboundMessage.received_at > received - self._soft_bounces.window,
                InboundMessage.id != row.id,
            )
        )
        reports = [
            TransientBounce(outbox_id, as_utc(at) or received, dsn_of(details).get("action", ""))
            for outbox_id, at, details in earlier
            if was_transient(details)
        ]
        this = found.statuses[0] if found.statuses else None
        # The outbox's id, not the row's: `row.outbox_id` is only set once this is done,
        # and a report naming no message would count as one more failed message.
        reports.append(TransientBounce(outbox.id, received, this.action if this else ""))
        if not suppress_after_transient(reports, received, self._soft_bounces):
            return _Acted("transient bounce: counted", {"bounce": "transient"})
        policy = self._soft_bounces
        evidence = f"{policy.limit} transient bounces in {policy.window.days} d; last " + (
            f"DSN {this.status} {this.diagnostic}" if this else "bounce (DSN)"
        )
        await self._suppress(session, lead, ConsentStatus.BOUNCED, evidence)
        return _Acted(
            f"transient bounce: the {policy.limit}th within {policy.window.days} days, "
            "address suppressed",
            {"bounce": "transient"},
        )

    async def _out_of_office(
        self, session: AsyncSession, lead: Lead, row: InboundMessage
    ) -> _Acted:
        """Hold the lead's journey emails until the return date the reply names, and make
        the deputy it names a lead of the same account without marketing consent."""
        text = reply_text(row.raw)
        details: dict[str, Any] = {}
        mail: dict[str, Any] = {"back_on": None, "deputy": None, "deputy_lead_id": None}
        done = ["automatic reply"]
        back_on = return_date(text, self._written_at(row))
        if back_on is not None:
            zone = lead_zone(lead.timezone, lead.country, self._default_timezone)
            until = hold_until(back_on, zone)
            current = as_utc(lead.mail_held_until)
            if current is None or current < until:
                lead.mail_held_until = until
            details["back_on"] = mail["back_on"] = back_on.isoformat()
            done.append(f"journey emails held until {back_on.isoformat()}")
        deputy_id = await self._deputy(session, lead, text, row.id)
        if deputy_id is not None:
            details["deputy_lead_id"] = mail["deputy_lead_id"] = deputy_id
            deputy = await session.get(Lead, deputy_id)
            mail["deputy"] = deputy.email if deputy else None
            done.append("deputy added as a lead")
        if len(done) == 1:
            return _Acted("automatic reply: noted (no return date, no deputy)")
        return _Acted(
            ": ".join([done[0], ", ".join(done[1:])]), details, ("lead_out_of_office", mail)
        )

    def _written_at(self, row: InboundMessage) -> datetime:
        """When the reply was written: its Date header, unless that is far from when it
        arrived (a wrong clock, a forgery), then its arrival."""
        received = as_utc(row.received_at) or utcnow()
        try:
            header = message_from_bytes(row.raw, policy=policy.default).get("Date")
            written = parsedate_to_datetime(str(header)) if header else None
        except (TypeError, ValueError, IndexError):
            written = None
        if written is None or written.tzinfo is None:
            return received
        return written if abs(written - received) <= DATE_HEADER_TRUST else received

    async def _deputy(
        self, session: AsyncSession, lead: Lead, text: str, inbound_id: int
    ) -> str | None:
        """The lead the deputy named in `text` is (created now, or already one), or None.

        Created with source `out-of-office`, consent `pending` and no double opt-in sent:
        nobody asked us to mail this person, so no journey does until they opt in
        themselves. An address on the suppression list is not taken at all. Idempotent:
        the address is the lead's natural key, and the insert does nothing when it exists.
        """
        if not lead.email:
            return None
        account = await session.get(Account, lead.account_id) if lead.account_id else None
        organisations = {lead.email.rpartition("@")[2]}
        if account is not None:
            organisations.add(account.domain)
        deputy = deputy_address(
            text,
            writer=lead.email,
            organisation_domains=frozenset(organisations),
            own_domains=self._own_domains,
        )
        if deputy is None:
            return None
        if await self._suppressions.reason(session, deputy.email) is not None:
            return None
        await insert_ignoring_conflict(
            session,
            Lead,
            {
                "id": new_id(),
                "email": deputy.email,
                "first_name": deputy.first_name,
                "last_name": deputy.last_name,
                "company": lead.company,
                "country": lead.country,
                "account_id": lead.account_id,
                "owner": lead.owner or (account.owner if account else None),
                "source": OUT_OF_OFFICE_SOURCE,
                "consent_status": ConsentStatus.PENDING.value,
                "properties": {"deputy_of": lead.id, "named_in_inbound": inbound_id},
            },
        )
        found = await session.execute(select(Lead.id).where(Lead.email == deputy.email))
        return found.scalar_one_or_none()

    async def _tell_owner(
        self, session: AsyncSession, lead: Lead, inbound_id: int, template: str,
        mail: dict[str, Any],
    ) -> str | None:  # fmt: skip
        """Email the lead's owner (else its account's) about the message, once per
        message; the rep told, or None (nobody owns the lead, or no notices are wired)."""
        if self._notices is None:
            return None
        account = await session.get(Account, lead.account_id) if lead.account_id else None
        rep = lead.owner or (account.owner if account else None)
        if rep is None:
            return None
        return await self._notices.tell_rep(
            lead.id, template, f"inbound:{inbound_id}/owner", rep_id=rep, extra={"mail": mail}
        )

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
