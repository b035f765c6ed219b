"""The email activity: render a journey's template for a lead and deliver it over SMTP, once."""

from __future__ import annotations

import hashlib
import logging
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    NOTIFY_OWNER,
    SEND_EMAIL,
    NotifyOwnerRequest,
    SendEmailRequest,
    SendEmailResult,
)
from activities.scoring import explain_score
from db.models import Account, Lead, OutboxEmail, utcnow
from db.writes import insert_once
from journeys.rendering import (
    LEAD_FIELDS,
    RenderedEmail,
    TemplateMissingError,
    render_email,
    template_context,
)
from journeys.sales_team import SALES_TEAM
from starter.settings import Settings

log = logging.getLogger(__name__)


def message_id_for(idempotency_key: str, mail_from: str) -> str:
    """A Message-ID derived from the send's key, so a resend is recognisably the same mail."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "nurture.invalid"
    return f"<{digest}@{domain}>"


def lead_fields(lead: Lead) -> dict[str, Any]:
    """The lead's fields that templates may use."""
    return {name: getattr(lead, name, None) for name in LEAD_FIELDS}


class EmailActivities:
    """Email delivery with injected settings and database sessions."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker) -> None:
        self._settings = settings
        self._sessions = sessions

    def _template_context(self, lead: Lead) -> dict[str, Any]:
        return template_context(
            lead_fields(lead),
            base_url=self._settings.public_base_url,
            sender_name=parseaddr(self._settings.mail_from)[0] or "Nurture",
            postal_address=self._settings.postal_address,
        )

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, request: SendEmailRequest) -> SendEmailResult:
        """Record the send in the outbox, deliver it, mark it sent.

        A retry (or a second worker) that finds the key already sent returns the recorded
        result; one that finds it pending delivers again with the same Message-ID.
        """
        async with self._sessions() as session:
            lead = await session.get(Lead, request.lead_id)
            if lead is None or lead.email is None or lead.erased_at is not None:
                return SendEmailResult(status="skipped", reason="lead not found or erased")
            # Read what the send needs now: a rollback below expires the loaded lead.
            recipient, context = lead.email, self._template_context(lead)
            return await self._send_once(
                session,
                OutboxEmail(
                    idempotency_key=request.idempotency_key,
                    lead_id=request.lead_id,
                    workflow_id=request.workflow_id,
                    step_id=request.step_id,
                    template=request.template,
                ),
                recipient,
                context,
            )

    @activity.defn(name=NOTIFY_OWNER)
    async def notify_owner(self, request: NotifyOwnerRequest) -> None:
        """Email a sales rep about a lead (assignment, SLA reminder, qualified account),
        with the score explanation; once per key, through the same outbox."""
        rep = SALES_TEAM.rep(request.rep_id)
        if rep is None:
            log.warning(
                "no sales rep %s: notification %s not sent", request.rep_id, request.template
            )
            return
        async with self._sessions() as session:
            lead = await session.get(Lead, request.lead_id)
            if lead is None or lead.erased_at is not None:
                return
            explanation = await explain_score(session, lead, utcnow())
            account = await session.get(Account, lead.account_id) if lead.account_id else None
            context = self._template_context(lead) | {
                "rep": rep.model_dump(),
                "contact": {"email": lead.email, "stage": lead.lifecycle_stage},
                "score": explanation.model_dump(),
                "account": (
                    {"domain": account.domain, "name": account.name, "score": account.score}
                    if account
                    else None
                ),
                "inbox_url": f"{self._settings.public_base_url.rstrip('/')}/inbox",
            }
            await self._send_once(
                session,
                OutboxEmail(
                    idempotency_key=request.idempotency_key,
                    lead_id=request.lead_id,
                    workflow_id=f"lead:{request.lead_id}",
                    step_id=request.template,
                    template=f"notifications/{request.template}",
                ),
                rep.email,
                context,
            )

    async def _send_once(
        self, session: AsyncSession, row: OutboxEmail, recipient: str, context: dict[str, Any]
    ) -> SendEmailResult:
        row.message_id = message_id_for(row.idempotency_key, self._settings.mail_from)
        key = row.idempotency_key
        await insert_once(session, row)
        outbox = (
            await session.execute(select(OutboxEmail).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
        if outbox.status == "sent":
            return SendEmailResult(status="sent", message_id=outbox.message_id)
        try:
            rendered = render_email(outbox.template, context)
        except TemplateMissingError as exc:
            raise ApplicationError(str(exc), type="TemplateMissing", non_retryable=True) from exc
        await self._deliver(recipient, outbox.message_id, rendered)
        outbox.status = "sent"
        outbox.subject = rendered.subject
        outbox.sent_at = utcnow()
        await session.commit()
        log.info("sent %s for lead %s (%s)", outbox.template, outbox.lead_id, outbox.message_id)
        return SendEmailResult(status="sent", message_id=outbox.message_id)

    async def _deliver(self, to: str, message_id: str, rendered: RenderedEmail) -> None:
        message = EmailMessage()
        name, address = parseaddr(self._settings.mail_from)
        message["From"] = formataddr((name, address))
        message["To"] = to
        message["Subject"] = rendered.subject
        message["Message-ID"] = message_id
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        settings = self._settings
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            timeout=30,
        )
