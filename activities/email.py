"""The email activity: render a journey's template for a lead and deliver it over SMTP, once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    EXPIRE_CONSENT,
    NOTIFY_OWNER,
    SEND_CONFIRMATION,
    SEND_EMAIL,
    ConfirmationRequest,
    ExpireConsentRequest,
    NotifyOwnerRequest,
    SendEmailRequest,
    SendEmailResult,
)
from activities.outbox_confirmation import SendConfirmations, set_outbox
from activities.smtp_delivery import PermanentFailure, deliver
from db.commit_point import commit_then
from db.email_links import store_links
from db.models import Account, ConsentRecord, Lead, OutboxEmail, as_utc, utcnow
from db.suppression_list import SuppressionList
from db.topic_subscriptions import topic_holds
from db.writes import insert_once
from journeys.consent import NO_MARKETING, ConsentAction, ConsentStatus, SuppressionReason
from journeys.esp_feedback import echo_headers
from journeys.link_tracking import TrackedLink
from journeys.outbox import OutboxStatus
from journeys.rendering import (
    RenderedEmail,
    TemplateMissingError,
    lead_fields,
    render_email,
    template_context,
)
from journeys.sales_team import SALES_TEAM
from journeys.send_policy import SendPolicy, next_allowed_moment
from journeys.topics import journey_topic
from starter.services.link_tokens import LinkTokens
from starter.services.score_explanation import explain_score
from starter.services.tracked_mail import MarketingMail
from starter.settings import Settings

log = logging.getLogger(__name__)


def message_id_for(idempotency_key: str, mail_from: str) -> str:
    """A Message-ID derived from the send's key, so a resend is recognisably the same mail."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "nurture.invalid"
    return f"<{digest}@{domain}>"


# While a double opt-in is pending, a held send asks again after this long (a confirmation
# also wakes the journey at once).
CONSENT_RECHECK = timedelta(hours=6)


class EmailActivities:
    """Email delivery with injected settings and database sessions."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker) -> None:
        self._settings = settings
        self._sessions = sessions
        self._confirmations = SendConfirmations(sessions)
        self._tokens = LinkTokens(settings.require_secret_key())
        self._suppressions = SuppressionList(settings.require_secret_key())
        self._mail = MarketingMail.of(settings)

    def return_path_for(self, outbox_id: int) -> str | None:
        """The message's own envelope sender when a bounce domain is set (VERP)."""
        domain = self._settings.bounce_domain
        return self._tokens.return_path(outbox_id, domain) if domain else None

    @property
    def _base(self) -> str:
        return self._settings.public_base_url.rstrip("/")

    def template_context_for(self, lead: Lead, outbox_id: int | None = None) -> dict[str, Any]:
        """What a template is rendered with for `lead`; with `outbox_id` (a real send),
        tracked links and the open pixel of that message."""
        # A real send: the lead's own pages and the pixel (its links are tracked once
        # rendered, `_deliver_once(tracked=True)`).
        links = None if outbox_id is None else self._mail.links(lead.id, outbox_id)
        return template_context(
            lead_fields(lead),
            base_url=self._settings.public_base_url,
            website_url=self._settings.website_url,
            sender_name=parseaddr(self._settings.mail_from)[0] or "Nurture",
            postal_address=self._settings.postal_address,
            links=links,
            stage=lead.lifecycle_stage,
        )

    def unsubscribe_url(self, lead_id: str) -> str:
        """Unsubscribe from everything (the footer's link)."""
        return self._mail.unsubscribe_url(lead_id)

    @activity.defn(name=SEND_EMAIL.name)
    async def send_email(self, request: SendEmailRequest) -> SendEmailResult:
        """Send a journey's (marketing) email once: suppression and consent checked now,
        deferred to the next allowed moment by send window and frequency cap, recorded in
        the outbox and committed as sent just before the SMTP server accepts it."""
        now = request.now or utcnow()
        async with self._sessions() as session:
            lead = await session.get(Lead, request.lead_id)
            if lead is None or lead.email is None or lead.erased_at is not None:
                return SendEmailResult(status="skipped", reason="lead not found or erased")
            outbox, lead = await self._claim(
                session,
                request.idempotency_key,
                lead_id=request.lead_id,
                workflow_id=request.workflow_id,
                step_id=request.step_id,
                template=request.template,
            )
            assert lead.email is not None
            if outbox.status == OutboxStatus.SENT:
                return SendEmailResult(status="sent", message_id=outbox.message_id)
            if lead.consent_status in NO_MARKETING:
                return SendEmailResult(status="skipped", reason=f"lead {lead.consent_status}")
            if lead.consent_status != ConsentStatus.CONFIRMED:
                return SendEmailResult(
                    status="deferred",
                    reason="waiting for the double opt-in confirmation",
                    retry_at=now + CONSENT_RECHECK,
                )
            # The list too, whatever the status says: it is what outlives an erasure.
            if (held := await self._suppressions.reason(session, lead.email)) is not None:
                return SendEmailResult(status="skipped", reason=f"address {held.value}")
            # The lead's choice about the journey's topic (its preference page): none of
            # it, or at most one a week or month (an answer to its own action isn't held).
            topic = journey_topic(request.workflow_id)
            holds = await topic_holds(session, [lead.id], topic, now)
            if lead.id in holds.unsubscribed:
                return SendEmailResult(status="skipped", reason=f"unsubscribed from {topic}")
            if (wait := holds.not_before.get(lead.id)) is not None and not request.answer:
                return SendEmailResult(
                    status="deferred", reason=f"the lead's frequency for {topic}", retry_at=wait
                )
            outbox.topic = topic
            # An out-of-office reply named the day the lead is back: follow-ups wait for it
            # (an answer to the lead's own action doesn't: the lead is evidently there).
            back_at = as_utc(lead.mail_held_until)
            if back_at is not None and back_at > now and not request.answer:
                return SendEmailResult(
                    status="deferred", reason="out of office (auto-reply)", retry_at=back_at
                )
            # An answer to the lead's own action goes at once; a follow-up waits for quiet
            # hours to end (in the lead's zone, else its country's, else the default) and
            # for the frequency cap, which counts answers too.
            sent = [] if request.answer else await self._marketing_sent(session, lead.id)
            allowed = next_allowed_moment(
                now,
                lead.timezone,
                sent,
                self._policy,
                country=lead.country,
                answer=request.answer,
            )
            if allowed > now:
                return SendEmailResult(
                    status="deferred", reason="send window or frequency cap", retry_at=allowed
                )
            context = self.template_context_for(lead, outbox.id)
            headers = self.marketing_headers(lead.id, outbox.id, topic)
            return await self._deliver_once(
                session, outbox, lead, context, headers, now, tracked=True
            )

    def marketing_headers(self, lead_id: str, outbox_id: int, topic: str) -> dict[str, str]:
        """The headers of a marketing email (journeys' and broadcasts')."""
        return {
            **self._mail.headers(lead_id, topic),  # one-click: from this topic only
            # The message's signed reference, where the providers whose webhooks we take
            # echo it back (the return path's local part: it verifies the same way).
            **echo_headers(
                self._tokens.return_path(outbox_id, "").partition("@")[0],
                self._settings.esp_webhooks,
            ),
        }

    def track(
        self, rendered: RenderedEmail, outbox_id: int, lead_id: str
    ) -> tuple[RenderedEmail, list[TrackedLink]]:
        """`rendered` with its links tracked, and the links to store with the send."""
        return self._mail.track(rendered, outbox_id, lead_id)

    @property
    def _policy(self) -> SendPolicy:
        return self._settings.send_policy

    async def _marketing_sent(self, session: AsyncSession, lead_id: str) -> list[datetime]:
        rows = await session.execute(
            select(OutboxEmail.sent_at).where(
                OutboxEmail.lead_id == lead_id,
                OutboxEmail.status == OutboxStatus.SENT,
                OutboxEmail.workflow_id.like("journey:%"),  # journeys send marketing email
            )
        )
        return [as_utc(at) for (at,) in rows if at is not None]

    @activity.defn(name=NOTIFY_OWNER.name)
    async def notify_owner(self, request: NotifyOwnerRequest) -> None:
        """Email a sales rep about a lead (assignment, SLA reminder, qualified account),
        with the score explanation; once per key, through the same outbox."""
        await self.tell_rep(
            request.lead_id, request.template, request.idempotency_key, rep_id=request.rep_id
        )

    async def tell_rep(
        self,
        lead_id: str,
        template: str,
        idempotency_key: str,
        *,
        rep_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str | None:
        """Email `template` (under templates/notifications) about a lead to `rep_id`, else
        the lead's owner, once per key; `extra` joins the template's context. The rep told
        (None: the lead has no such rep, or is erased)."""
        async with self._sessions() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None or lead.erased_at is not None:
                return None
            rep_id = rep_id or lead.owner
            rep = SALES_TEAM.rep(rep_id) if rep_id else None
            if rep is None:
                log.warning("no sales rep %s: %s not sent", rep_id, template)
                return None
            explanation = await explain_score(session, lead, utcnow())
            account = await session.get(Account, lead.account_id) if lead.account_id else None
            context = self.template_context_for(lead) | {
                "rep": rep.model_dump(),
                "contact": {"email": lead.email, "stage": lead.lifecycle_stage},
                "score": explanation.model_dump(),
                "account": (
                    {"domain": account.domain, "name": account.name, "score": account.score}
                    if account
                    else None
                ),
                "inbox_url": f"{self._base}/inbox",
                **(extra or {}),
            }
            outbox, _ = await self._claim(
                session,
                idempotency_key,
                lead_id=lead_id,
                workflow_id=f"lead:{lead_id}",
                step_id=template,
                template=f"notifications/{template}",
            )
            if outbox.status != OutboxStatus.SENT:
                await self._deliver_once(session, outbox, None, context, {}, utcnow(), to=rep.email)
            return rep.id

    @activity.defn(name=SEND_CONFIRMATION.name)
    async def send_confirmation(self, request: ConfirmationRequest) -> SendEmailResult:
        """The double opt-in email (transactional: no cap, no window): a signed link to a
        page that confirms. Sent only while the lead's consent is pending."""
        async with self._sessions() as session:
            lead = await session.get(Lead, request.lead_id)
            if lead is None or lead.email is None or lead.erased_at is not None:
                return SendEmailResult(status="skipped", reason="lead not found or erased")
            if lead.consent_status != ConsentStatus.PENDING:
                return SendEmailResult(status="skipped", reason=f"consent {lead.consent_status}")
            template = "consent/reminder" if request.reminder else "consent/confirm"
            outbox, lead = await self._claim(
                session,
                request.idempotency_key,
                lead_id=request.lead_id,
                workflow_id=f"lead:{request.lead_id}",
                step_id=template,
                template=template,
            )
            assert lead.email is not None
            if outbox.status == OutboxStatus.SENT:
                return SendEmailResult(status="sent", message_id=outbox.message_id)
            # Again under the outbox lock: an unsubscribe may have committed meanwhile.
            if lead.consent_status != ConsentStatus.PENDING:
                return SendEmailResult(status="skipped", reason=f"consent {lead.consent_status}")
            if not await self._may_confirm(session, lead):
                return SendEmailResult(status="skipped", reason="address suppressed")
            if request.reminder:
                session.add(ConsentRecord(lead_id=lead.id, action="reminded"))
            context = self.template_context_for(lead) | {
                "confirm_url": f"{self._base}/c/{self._tokens.confirm(lead.id)}"
            }
            return await self._deliver_once(session, outbox, lead, context, {}, utcnow())

    async def _may_confirm(self, session: AsyncSession, lead: Lead) -> bool:
        """A suppressed address gets a confirmation email only for a re-subscription the
        lead itself asked for (its own form fill) after the suppression."""
        entry = await self._suppressions.entry(session, lead.email)
        if entry is None:
            return True
        asked = await session.execute(
            select(ConsentRecord.id).where(
                ConsentRecord.lead_id == lead.id,
                ConsentRecord.action == ConsentAction.RESUBSCRIBE_REQUESTED.value,
                ConsentRecord.at > entry.at,
            )
        )
        return asked.first() is not None

    @activity.defn(name=EXPIRE_CONSENT.name)
    async def expire_consent(self, request: ExpireConsentRequest) -> str:
        """A double opt-in never confirmed expires: no marketing email, ever, until the
        lead opts in again. A suppressed lead's re-subscription that expires leaves it as
        suppressed as before. Returns the consent status after."""
        async with self._sessions() as session:
            lead = await session.get(Lead, request.lead_id, with_for_update=True)
            if lead is None:
                return ConsentStatus.ERASED.value
            if lead.consent_status == ConsentStatus.PENDING:
                held = await self._suppressions.reason(session, lead.email)
                lead.consent_status = (held or ConsentStatus.EXPIRED).value
                session.add(ConsentRecord(lead_id=lead.id, action=ConsentAction.EXPIRED.value))
                await session.commit()
            return lead.consent_status

    # --- the outbox and delivery ----------------------------------------------------------

    async def _claim(
        self,
        session: AsyncSession,
        key: str,
        *,
        lead_id: str,
        workflow_id: str,
        step_id: str,
        template: str,
    ) -> tuple[OutboxEmail, Lead]:
        """Claim the send of `key`: its outbox row, created on first sight, locked until
        the session's transaction ends (a second attempt of the same send waits for the
        first), and the lead read again under that lock (an unsubscribe or a bounce may
        have committed meanwhile). The caller checks whether the row is already sent."""
        await self._confirmations.settled(key)
        await insert_once(
            session,
            OutboxEmail(
                idempotency_key=key,
                lead_id=lead_id,
                workflow_id=workflow_id,
                step_id=step_id,
                template=template,
                message_id=message_id_for(key, self._settings.mail_from),
            ),
        )
        query = select(OutboxEmail).where(OutboxEmail.idempotency_key == key).with_for_update()
        outbox = (await session.execute(query)).scalar_one()
        lead = await session.get(Lead, lead_id, populate_existing=True)
        assert lead is not None  # the outbox row refers to it
        return outbox, lead

    async def _deliver_once(
        self,
        session: AsyncSession,
        outbox: OutboxEmail,
        lead: Lead | None,
        context: dict[str, Any],
        headers: dict[str, str],
        now: datetime,
        to: str | None = None,
        tracked: bool = False,
    ) -> SendEmailResult:
        """Render, send and record once; `tracked`: a marketing email, whose links become
        tracked redirects, stored with its `sent` status."""
        try:
            rendered = render_email(outbox.template, context)
        except TemplateMissingError as exc:
            raise ApplicationError(str(exc), type="TemplateMissing", non_retryable=True) from exc
        if tracked and lead is not None:
            rendered, links = self.track(rendered, outbox.id, lead.id)
            await store_links(session, links)
        recipient = to or (lead.email if lead else None)
        assert recipient is not None
        message = self.message_for(recipient, outbox.message_id, rendered, headers)

        async def commit(send_dot: Callable[[], None]) -> None:
            outbox.status, outbox.subject, outbox.sent_at = OutboxStatus.SENT, rendered.subject, now
            await commit_then(session, send_dot)

        # Read now: after a failed COMMIT the session can't load them again.
        key, outbox_id, message_id = outbox.idempotency_key, outbox.id, outbox.message_id
        template, lead_id = outbox.template, outbox.lead_id

        async def revert() -> None:
            await session.rollback()  # its connection may be gone (CommitOutcomeUnknown)
            await set_outbox(session, outbox_id, OutboxStatus.PENDING, sent_at=None)
            await session.commit()

        async def confirm() -> None:
            await self._confirmations.confirm(key, outbox_id, rendered.subject, now)

        try:
            await deliver(
                self._settings, message, commit=commit, revert=revert, confirm=confirm,
                envelope_from=self.return_path_for(outbox_id),
            )  # fmt: skip
        except UnicodeError as failure:
            # An address (stored before the API refused such addresses) that SMTP without
            # SMTPUTF8 can't carry: no retry heals it. Recorded, visible, never retried.
            await session.rollback()
            await set_outbox(session, outbox_id, OutboxStatus.FAILED)
            await session.commit()
            log.warning("%s for lead %s can't be sent: %s", template, lead_id, failure)
            return SendEmailResult(status="skipped", reason="undeliverable address (not ASCII)")
        except PermanentFailure as failure:
            await session.rollback()
            if not failure.about_recipient:  # the message was refused, not the address
                await set_outbox(session, outbox_id, OutboxStatus.FAILED)
                await session.commit()
                log.warning("%s refused for lead %s: %s", template, lead_id, failure)
                return SendEmailResult(status="skipped", reason=f"refused: {failure}"[:200])
            await set_outbox(session, outbox_id, OutboxStatus.BOUNCED)
            if lead is not None:  # suppress the address: no more email to it
                await session.execute(
                    update(Lead)
                    .where(Lead.id == lead_id)
                    .values(consent_status=ConsentStatus.BOUNCED.value)
                )
                # As of now: a re-subscription link sent before the bounce can't lift it.
                await self._suppressions.renew(session, recipient, SuppressionReason.BOUNCED)
                session.add(
                    ConsentRecord(
                        lead_id=lead_id,
                        action=ConsentAction.BOUNCED.value,
                        source=str(failure)[:200],
                    )
                )
            await session.commit()
            log.warning("%s bounced for lead %s: %s", template, lead_id, failure)
            return SendEmailResult(status="skipped", reason=f"bounced: {failure}"[:200])
        log.info("sent %s for lead %s (%s)", template, lead_id, message_id)
        return SendEmailResult(status="sent", message_id=message_id)

    def message_for(
        self, to: str, message_id: str, rendered: RenderedEmail, headers: dict[str, str]
    ) -> EmailMessage:
        """The MIME message (text and HTML alternatives) from our sender to `to`."""
        message = EmailMessage()
        name, address = parseaddr(self._settings.mail_from)
        message["From"] = formataddr((name, address))
        message["To"] = to
        message["Subject"] = rendered.subject
        message["Message-ID"] = message_id
        for header, value in headers.items():
            message[header] = value
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message
