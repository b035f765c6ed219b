"""What an email provider's webhook says (issue 16, point 4): Amazon SES (through SNS),
SendGrid, Postmark and Mailgun events read into the inbound pipeline's `Classification`,
with the addresses the provider names and the references to our message it echoes back.

Pure: signatures are checked before this runs (starter/services/esp_signatures.py) and
the references after it (activities/inbound.py verifies them like a VERP return path);
here nothing is trusted or acted on, only read. A malformed event raises `PayloadInvalid`
naming the field; an event of a type we don't act on is `InboundKind.OTHER`, never an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from journeys.inbound_mail import Classification, DeliveryStatus, InboundKind

_M = TypeVar("_M", bound=BaseModel)


class InboundSource(StrEnum):
    """Where an inbound message came from (`inbound_messages.source`)."""

    SMTP = "smtp"  # the inbound listener (a DSN, an ARF report, a reply)
    SES = "ses"
    SENDGRID = "sendgrid"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"


PROVIDER_NAMES = {
    InboundSource.SES: "Amazon SES",
    InboundSource.SENDGRID: "SendGrid",
    InboundSource.POSTMARK: "Postmark",
    InboundSource.MAILGUN: "Mailgun",
}

# What each provider echoes back of a message it sent, carrying the message's signed
# reference (the local part of its VERP return path, `bounce+<outbox id>-<mac>`): SES
# returns the original headers in `mail.headers`; SendGrid returns the SMTP API's unique
# arguments as top-level event fields; Mailgun returns `X-Mailgun-Variables` as
# `user-variables`; Postmark returns `X-PM-Metadata-<key>` headers as `Metadata`.
OUTBOX_HEADER = "X-Nurture-Outbox"
OUTBOX_VARIABLE = "nurture_outbox"


def echo_headers(reference: str, providers: Iterable[InboundSource]) -> dict[str, str]:
    """The headers that make each of `providers` hand `reference` back in its webhooks
    (only theirs: another relay would pass them on to the recipient as clutter)."""
    wanted = set(providers)
    headers: dict[str, str] = {}
    if InboundSource.SES in wanted:
        headers[OUTBOX_HEADER] = reference
    if InboundSource.SENDGRID in wanted:
        headers["X-SMTPAPI"] = json.dumps({"unique_args": {OUTBOX_VARIABLE: reference}})
    if InboundSource.MAILGUN in wanted:
        headers["X-Mailgun-Variables"] = json.dumps({OUTBOX_VARIABLE: reference})
    if InboundSource.POSTMARK in wanted:
        headers[f"X-PM-Metadata-{OUTBOX_VARIABLE}"] = reference
    return headers


class PayloadInvalid(ValueError):
    """A provider's payload we can't read: `loc` names the field (as the API's 422 does)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class ProviderEvent:
    """One event of a provider's webhook, read."""

    source: InboundSource
    event_id: str  # the provider's id of this event: a retry carries the same one
    event: str  # the provider's own name for what happened, e.g. "bounce", "HardBounce"
    recipients: tuple[str, ...]  # the addresses the provider says it is about (lower case)
    classification: Classification
    # Candidate references to our message (`bounce+<id>-<mac>`), unverified.
    references: tuple[str, ...] = ()

    @property
    def message_key(self) -> str:
        """The inbound row's unique key: one row per provider event."""
        return f"{self.source.value}:{self.event_id}"[:300]


# An enhanced status code (RFC 3463) quoted in a diagnostic, e.g. `5.1.1`.
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def _status(permanent: bool, *texts: str | None) -> str:
    """The first enhanced status code in `texts` that agrees with the provider's verdict,
    else the generic one (`5.0.0` permanent, `4.0.0` transient): the provider decides
    whether it is permanent, the code is evidence."""
    wanted = "5" if permanent else "4"
    for text in texts:
        for found in _ENHANCED.finditer(text or ""):
            if found.group(1) == wanted:
                return found.group(0)
    return f"{wanted}.0.0"


def _bounce(
    source: InboundSource,
    recipients: Iterable[tuple[str, str | None, str]],
    *,
    permanent: bool,
    retried: bool = False,
    subject: str = "",
    reason: str = "",
) -> Classification:
    """A bounce: one status per (recipient, status, diagnostic), evidence naming the provider.
    A transient failure the provider still retries is `delayed` (a warning, counted for
    nothing, as a DSN's `Action: delayed`); one it gave up on `failed`."""
    statuses = tuple(
        DeliveryStatus(
            recipient=address.lower()[:320],
            status=_status(permanent, status, diagnostic),
            action="delayed" if retried and not permanent else "failed",
            diagnostic=" ".join(f"{PROVIDER_NAMES[source]}: {diagnostic}".split())[:300],
        )
        for address, status, diagnostic in recipients
    )
    return Classification(InboundKind.BOUNCE, statuses, subject=subject[:300], reason=reason[:300])


def _validated(model: type[_M], data: object, loc: tuple[str | int, ...]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise PayloadInvalid((*loc, *first["loc"]), first["msg"]) from None


def _json(raw: bytes, loc: tuple[str | int, ...] = ("body",)) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeError):
        raise PayloadInvalid(loc, "not JSON") from None


class _Lenient(BaseModel):
    # Providers add fields at will (SES says so): unknown ones are ignored, never refused.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --- SendGrid (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event)


class SendGridEvent(_Lenient):
    """One event of SendGrid's Event Webhook (a POST carries a JSON array of them)."""

    email: str = Field(max_length=320)
    event: str = Field(max_length=60)
    sg_event_id: str = Field(min_length=1, max_length=200)
    type: str | None = None  # bounce events: "bounce" (permanent) or "blocked"
    status: str | None = None
    reason: str | None = None
    response: str | None = None
    nurture_outbox: str | None = Field(default=None, max_length=200)


def sendgrid_batch(body: bytes) -> list[bytes]:
    """The events of one SendGrid POST, each as it is stored (its own JSON object)."""
    batch = _json(body)
    if not isinstance(batch, list):
        raise PayloadInvalid(("body",), "expected a JSON array of events")
    events = []
    for index, item in enumerate(batch):
        _validated(SendGridEvent, item, ("body", index))
        events.append(json.dumps(item, sort_keys=True, separators=(",", ":")).encode())
    return events


def sendgrid_event(raw: bytes) -> ProviderEvent:
    """One stored SendGrid event, read."""
    event = _validated(SendGridEvent, _json(raw), ("body",))
    recipient = event.email.lower()
    reason = f"SendGrid {event.event}" + (f" ({event.type})" if event.type else "")
    if event.event == "bounce":
        # "blocked" is about the message or the sending IP, not the address (listmonk and
        # Mautic#9222 learned it the hard way): transient.
        permanent = (event.type or "bounce") == "bounce"
        diagnostic = event.reason or event.response or ""
        found = _bounce(
            InboundSource.SENDGRID,
            [(recipient, event.status, diagnostic)],
            permanent=permanent,
            reason=reason,
        )
    elif event.event == "spamreport":
        found = Classification(InboundKind.COMPLAINT, reason="complaint (SendGrid spamreport)")
    elif event.event == "delivered":
        found = Classification(InboundKind.DELIVERED, reason=reason)
    else:  # processed, deferred, dropped, open, click, unsubscribe, …: recorded only
        found = Classification(InboundKind.OTHER, reason=reason[:300])
    return ProviderEvent(
        InboundSource.SENDGRID,
        event.sg_event_id,
        event.event,
        (recipient,),
        found,
        _references(event.nurture_outbox),
    )


# --- Amazon SES through SNS (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html)


class SnsMessage(_Lenient):
    """The SNS envelope (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html)."""

    type: str = Field(alias="Type", max_length=40)
    message_id: str = Field(alias="MessageId", min_length=1, max_length=100)
    topic_arn: str = Field(alias="TopicArn", max_length=300)
    message: str = Field(alias="Message")
    timestamp: str = Field(alias="Timestamp", max_length=40)
    subject: str | None = Field(default=None, alias="Subject")
    subscribe_url: str | None = Field(default=None, alias="SubscribeURL")
    token: str | None = Field(default=None, alias="Token")
    signature_version: str | None = Field(default=None, alias="SignatureVersion")
    signature: str | None = Field(default=None, alias="Signature")
    signing_cert_url: str | None = Field(default=None, alias="SigningCertURL")


def sns_message(body: bytes) -> SnsMessage:
    """The SNS envelope of a request (not yet verified)."""
    return _validated(SnsMessage, _json(body), ("body",))


class _SesHeader(_Lenient):
    name: str
    value: str


class _SesCommonHeaders(_Lenient):
    subject: str | None = None


class _SesMail(_Lenient):
    message_id: str = Field(default="", alias="messageId")
    source: str = ""
    destination: list[str] = []
    headers: list[_SesHeader] = []
    common_headers: _SesCommonHeaders | None = Field(default=None, alias="commonHeaders")


class _SesRecipient(_Lenient):
    email_address: str = Field(alias="emailAddress", max_length=320)
    status: str | None = None
    diagnostic_code: str | None = Field(default=None, alias="diagnosticCode")


class _SesBounce(_Lenient):
    bounce_type: str = Field(alias="bounceType")  # Permanent, Transient, Undetermined
    bounce_sub_type: str = Field(default="", alias="bounceSubType")
    bounced_recipients: list[_SesRecipient] = Field(alias="bouncedRecipients", min_length=1)


class _SesComplaint(_Lenient):
    complained_recipients: list[_SesRecipient] = Field(alias="complainedRecipients")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")
    complaint_sub_type: str | None = Field(default=None, alias="complaintSubType")


class _SesDelivery(_Lenient):
    recipients: list[str] = []


class SesNotification(_Lenient):
    """SES's notification in the SNS `Message` (identity notifications name their type
    `notificationType`, event publishing `eventType`)."""

    kind: str = Field(validation_alias=AliasChoices("notificationType", "eventType"))
    mail: _SesMail
    bounce: _SesBounce | None = None
    complaint: _SesComplaint | None = None
    delivery: _SesDelivery | None = None


def ses_event(raw: bytes) -> ProviderEvent:
    """A stored SNS notification from SES (the verified envelope), read."""
    envelope = sns_message(raw)
    notification = _validated(
        SesNotification, _json(envelope.message.encode(), ("body", "Message")), ("body", "Message")
    )
    mail = notification.mail
    subject = (mail.common_headers.subject if mail.common_headers else None) or ""
    headers = [h.value for h in mail.headers if h.name.lower() == OUTBOX_HEADER.lower()]
    references = _references(*headers, mail.source)
    kind = notification.kind
    if kind == "Bounce" and notification.bounce is not None:
        bounce = notification.bounce
        recipients = tuple(r.email_address.lower() for r in bounce.bounced_recipients)
        found = _bounce(
            InboundSource.SES,
            [
                (r.email_address, r.status, r.diagnostic_code or "")
                for r in bounce.bounced_recipients
            ],
            # Undetermined: SES couldn't tell; not enough to suppress anyone.
            permanent=bounce.bounce_type == "Permanent",
            subject=subject,
            reason=f"SES {bounce.bounce_type} bounce ({bounce.bounce_sub_type})",
        )
    elif kind == "Complaint" and notification.complaint is not None:
        complaint = notification.complaint
        recipients = tuple(r.email_address.lower() for r in complaint.complained_recipients)
        # A sub-type (OnAccountSuppressionList) means SES never sent it: no one complained.
        found = Classification(
            InboundKind.COMPLAINT if complaint.complaint_sub_type is None else InboundKind.OTHER,
            subject=subject[:300],
            reason=f"complaint (SES, {complaint.complaint_feedback_type or 'no feedback report'})",
        )
    elif kind == "Delivery" and notification.delivery is not None:
        recipients = tuple(r.lower() for r in notification.delivery.recipients)
        found = Classification(InboundKind.DELIVERED, subject=subject[:300], reason="SES Delivery")
    else:  # Send, Reject, Open, Click, …: recorded only
        recipients = tuple(r.lower() for r in mail.destination)
        found = Classification(InboundKind.OTHER, subject=subject[:300], reason=f"SES {kind}"[:300])
    return ProviderEvent(
        InboundSource.SES, envelope.message_id, kind[:60], recipients, found, references
    )


# --- Postmark (https://postmarkapp.com/developer/webhooks/webhooks-overview)

# https://postmarkapp.com/developer/api/bounce-api#bounce-types
POSTMARK_PERMANENT = frozenset({"HardBounce", "BadEmailAddress"})
POSTMARK_TRANSIENT = frozenset({"Transient", "SoftBounce", "DnsError", "Blocked", "DMARCPolicy"})


class PostmarkEvent(_Lenient):
    """A Postmark webhook POST (one event: Bounce, SpamComplaint, Delivery, Open, …)."""

    record_type: str = Field(alias="RecordType", max_length=60)
    id: int | None = Field(default=None, alias="ID")
    type: str | None = Field(default=None, alias="Type", max_length=60)
    message_id: str = Field(default="", alias="MessageID", max_length=200)
    email: str | None = Field(default=None, alias="Email", max_length=320)
    recipient: str | None = Field(default=None, alias="Recipient", max_length=320)
    details: str = Field(default="", alias="Details")
    description: str = Field(default="", alias="Description")
    subject: str = Field(default="", alias="Subject")
    metadata: dict[str, Any] = Field(default_factory=dict, alias="Metadata")


def postmark_event(raw: bytes) -> ProviderEvent:
    """A stored Postmark webhook POST, read."""
    event = _validated(PostmarkEvent, _json(raw), ("body",))
    if event.record_type in ("Bounce", "SpamComplaint") and event.id is None:
        raise PayloadInvalid(("body", "ID"), f"a {event.record_type} needs its ID")
    address = (event.email or event.recipient or "").lower()
    reference = event.metadata.get(OUTBOX_VARIABLE)
    references = _references(reference if isinstance(reference, str) else None)
    reason = f"Postmark {event.record_type}" + (f" ({event.type})" if event.type else "")
    if event.record_type == "SpamComplaint" or event.type == "SpamComplaint":
        found = Classification(
            InboundKind.COMPLAINT, subject=event.subject[:300], reason="complaint (Postmark)"
        )
        event_id = f"complaint:{event.id}"
    elif event.record_type == "Bounce" and (event.type or "") in (
        POSTMARK_PERMANENT | POSTMARK_TRANSIENT
    ):
        found = _bounce(
            InboundSource.POSTMARK,
            [(address, None, event.details or event.description)],
            permanent=event.type in POSTMARK_PERMANENT,
            retried=event.type == "Transient",  # "Message delayed": Postmark still tries
            subject=event.subject,
            reason=reason,
        )
        event_id = f"bounce:{event.id}"
    elif event.record_type == "Bounce":  # AutoResponder, Unsubscribe, ManuallyDeactivated, …
        found = Classification(InboundKind.OTHER, subject=event.subject[:300], reason=reason)
        event_id = f"bounce:{event.id}"
    elif event.record_type == "Delivery":
        found = Classification(InboundKind.DELIVERED, reason=reason)
        # A delivery has no ID of its own: one per message and recipient.
        event_id = f"delivery:{event.message_id}:{address}"
    else:  # Open, Click, SubscriptionChange, …: recorded only
        found = Classification(InboundKind.OTHER, reason=reason[:300])
        event_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    return ProviderEvent(
        InboundSource.POSTMARK,
        event_id,
        event.record_type,
        (address,) if address else (),
        found,
        references,
    )


# --- Mailgun (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads)


class MailgunSignature(_Lenient):
    """Mailgun signs `timestamp + token` (HMAC-SHA256 with the webhook signing key)."""

    timestamp: str = Field(min_length=1, max_length=20)
    token: str = Field(min_length=1, max_length=200)
    signature: str = Field(min_length=1, max_length=200)


class _MailgunDeliveryStatus(_Lenient):
    code: int | None = None
    message: str = ""
    description: str = ""


class _MailgunHeaders(_Lenient):
    subject: str = ""
    message_id: str = Field(default="", alias="message-id")


class _MailgunMessage(_Lenient):
    headers: _MailgunHeaders = _MailgunHeaders()


class MailgunEventData(_Lenient):
    """`event-data`: what happened (`failed` with a `severity`, `complained`, `delivered`, …)."""

    event: str = Field(max_length=60)
    id: str = Field(min_length=1, max_length=200)
    recipient: str = Field(default="", max_length=320)
    severity: str | None = None  # failed: "permanent" or "temporary"
    reason: str | None = None
    delivery_status: _MailgunDeliveryStatus = Field(
        default_factory=_MailgunDeliveryStatus, alias="delivery-status"
    )
    # An object, or an empty list when the message carried none (as Mailgun's samples show).
    user_variables: dict[str, Any] | list[Any] = Field(default_factory=dict, alias="user-variables")
    message: _MailgunMessage = _MailgunMessage()


class MailgunWebhook(_Lenient):
    """A Mailgun webhook POST: its signature and one event."""

    signature: MailgunSignature
    event_data: MailgunEventData = Field(alias="event-data")


def mailgun_signature(body: bytes) -> MailgunSignature | None:
    """The signature block of a Mailgun POST, or None when it has none (unsigned)."""
    payload = _json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("signature"), dict):
        return None
    return _validated(MailgunSignature, payload["signature"], ("body", "signature"))


def mailgun_event(raw: bytes) -> ProviderEvent:
    """A stored Mailgun webhook POST, read."""
    data = _validated(MailgunWebhook, _json(raw), ("body",)).event_data
    recipient = data.recipient.lower()
    variables = data.user_variables if isinstance(data.user_variables, dict) else {}
    reference = variables.get(OUTBOX_VARIABLE)
    subject = data.message.headers.subject
    reason = f"Mailgun {data.event}" + (f" ({data.severity})" if data.severity else "")
    if data.event == "failed" and data.severity in ("permanent", "temporary"):
        status = data.delivery_status
        diagnostic = " ".join(
            part for part in (str(status.code or ""), status.message, status.description) if part
        )
        found = _bounce(
            InboundSource.MAILGUN,
            [(recipient, None, diagnostic)],
            permanent=data.severity == "permanent",
            retried=True,  # Mailgun retries a temporary failure
            subject=subject,
            reason=f"{reason} {data.reason or ''}".strip(),
        )
    elif data.event == "complained":
        found = Classification(
            InboundKind.COMPLAINT, subject=subject[:300], reason="complaint (Mailgun)"
        )
    elif data.event == "delivered":
        found = Classification(InboundKind.DELIVERED, subject=subject[:300], reason=reason)
    else:  # accepted, opened, clicked, unsubscribed, …: recorded only
        found = Classification(InboundKind.OTHER, subject=subject[:300], reason=reason[:300])
    return ProviderEvent(
        InboundSource.MAILGUN,
        data.id,
        data.event,
        (recipient,) if recipient else (),
        found,
        _references(reference if isinstance(reference, str) else None),
    )


def _references(*candidates: str | None) -> tuple[str, ...]:
    """The candidates that could be a reference to our message (verified later)."""
    return tuple(c.strip()[:200] for c in candidates if c and "bounce+" in c.lower())


_READERS = {
    InboundSource.SES: ses_event,
    InboundSource.SENDGRID: sendgrid_event,
    InboundSource.POSTMARK: postmark_event,
    InboundSource.MAILGUN: mailgun_event,
}


def read_event(source: InboundSource, raw: bytes) -> ProviderEvent:
    """A stored provider event, read (`PayloadInvalid` if it can't be)."""
    if source == InboundSource.SMTP:
        raise ValueError("an SMTP message is classified by journeys.inbound_mail")
    return _READERS[source](raw)
