"""Taking an email provider's webhook (issue 16, point 4): verify the request as the
provider signs it (starter/services/esp_signatures.py), read every event in it
(journeys/esp_feedback.py), store each as an `inbound_messages` row keyed by the provider's
event id — all of them before the answer, in one transaction, so a 2xx means stored and a
provider's retry is the same rows — then hand each row to the same `InboundMessageWorkflow`
the SMTP listener starts. A request that doesn't verify, or an event that can't be read,
stores nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from journeys.esp_feedback import (
    PROVIDER_NAMES,
    InboundSource,
    PayloadInvalid,
    ProviderEvent,
    mailgun_event,
    mailgun_signature,
    postmark_event,
    sendgrid_batch,
    sendgrid_event,
    ses_event,
    sns_message,
)
from starter.services.errors import Problem, Refusal
from starter.services.esp_signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SignatureInvalid,
    SnsVerifier,
    TopicNotAllowed,
    sendgrid_public_key,
    verify_basic_auth,
    verify_mailgun,
    verify_sendgrid,
)
from starter.services.inbound import Received, hand_over, hand_over_waiting, store_inbound
from starter.services.sales import webhook_receipt
from starter.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Rows of a provider stored but not handed over this long ago (the API stopped between
# storing and starting) are handed over by the provider's next request.
WAITING_AFTER = timedelta(minutes=1)
WAITING_BATCH = 50


class WebhookNotConfigured(Problem):
    """404: this deployment takes no webhooks from that provider (the setting is unset) —
    not 503, which a provider would retry for days."""

    def __init__(self, source: InboundSource, setting: str) -> None:
        super().__init__(
            Refusal.NOT_FOUND,
            (),
            f"the {PROVIDER_NAMES[source]} webhook is not configured here: set {setting}",
            "webhook_not_configured",
        )


class WebhookUnauthenticated(Problem):
    """401: unsigned, badly signed, stale or replayed; `loc` names what failed."""

    def __init__(self, failed: SignatureInvalid) -> None:
        super().__init__(Refusal.UNAUTHENTICATED, failed.field, failed.message, "signature_invalid")


class TopicRefused(Problem):
    """403: a genuine SNS message from a topic not in SES_SNS_TOPIC_ARNS."""

    def __init__(self, message: str) -> None:
        super().__init__(Refusal.FORBIDDEN, ("body", "TopicArn"), message, "topic_not_allowed")


class WebhookPayloadInvalid(Problem):
    """422: an event we can't read, the field named."""

    def __init__(self, invalid: PayloadInvalid) -> None:
        loc = tuple(str(part) for part in invalid.loc)
        super().__init__(Refusal.INVALID, loc, invalid.message, "invalid_payload")


class WebhookAccepted(BaseModel):
    """The answer to a provider: how many events were stored (a retry's count the same)."""

    received: int
    note: str | None = None


@dataclass(frozen=True)
class InboundPipeline:
    """Where verified events go: the database, and Temporal's task queue."""

    sessions: async_sessionmaker
    client: Client
    task_queue: str


async def take(
    pipeline: InboundPipeline, events: list[tuple[bytes, ProviderEvent]]
) -> WebhookAccepted:
    """Store `events` (each once) before answering, then start their workflows."""
    ids = await store_inbound(
        pipeline.sessions,
        [
            Received(message_key=e.message_key, raw=raw, source=e.source, recipients=e.recipients)
            for raw, e in events
        ],
    )
    if await hand_over(pipeline.sessions, pipeline.client, pipeline.task_queue, ids) and events:
        try:  # Temporal answers: pick up what an earlier, interrupted request left stored
            await hand_over_waiting(
                pipeline.sessions,
                pipeline.client,
                pipeline.task_queue,
                source=events[0][1].source,
                older_than=WAITING_AFTER,
                limit=WAITING_BATCH,
            )
        except Exception:  # stored: the next request (or `nurture inbound`) tries again
            log.exception("inbound rows waiting for their workflow")
    return WebhookAccepted(received=len(events))


def _read(read: Callable[[], _T]) -> _T:
    try:
        return read()
    except PayloadInvalid as exc:
        raise WebhookPayloadInvalid(exc) from None


# --- SendGrid


async def receive_sendgrid(
    settings: Settings, pipeline: InboundPipeline, body: bytes, headers: Mapping[str, str]
) -> WebhookAccepted:
    """SendGrid's Signed Event Webhook: a JSON array of events."""
    if settings.sendgrid_webhook_public_key is None:
        raise WebhookNotConfigured(InboundSource.SENDGRID, "SENDGRID_WEBHOOK_PUBLIC_KEY")
    key = sendgrid_public_key(settings.sendgrid_webhook_public_key)  # valid: settings checked
    try:
        verify_sendgrid(
            body,
            headers.get(SENDGRID_SIGNATURE_HEADER),
            headers.get(SENDGRID_TIMESTAMP_HEADER),
            key,
        )
    except SignatureInvalid as exc:
        raise WebhookUnauthenticated(exc) from None
    events = _read(lambda: [(raw, sendgrid_event(raw)) for raw in sendgrid_batch(body)])
    return await take(pipeline, events)


# --- Mailgun


async def receive_mailgun(
    settings: Settings, pipeline: InboundPipeline, body: bytes
) -> WebhookAccepted:
    """A Mailgun webhook: `signature` and `event-data` in a JSON body. The signature covers
    only a timestamp and a token, so each token is taken once (a replay is a 409)."""
    if settings.mailgun_webhook_signing_key is None:
        raise WebhookNotConfigured(InboundSource.MAILGUN, "MAILGUN_WEBHOOK_SIGNING_KEY")
    key = settings.mailgun_webhook_signing_key.get_secret_value().encode()
    signature = _read(lambda: mailgun_signature(body))
    if signature is None:
        raise WebhookUnauthenticated(SignatureInvalid(("body", "signature"), "unsigned"))
    try:
        receipt = verify_mailgun(signature.timestamp, signature.token, signature.signature, key)
    except SignatureInvalid as exc:
        raise WebhookUnauthenticated(exc) from None
    event = _read(lambda: mailgun_event(body))
    async with webhook_receipt(pipeline.sessions, receipt):
        return await take(pipeline, [(body, event)])


# --- Postmark


async def receive_postmark(
    settings: Settings, pipeline: InboundPipeline, body: bytes, headers: Mapping[str, str]
) -> WebhookAccepted:
    """A Postmark webhook (one event). Postmark signs nothing: the URL carries HTTP basic
    credentials (`https://user:password@…`), as Postmark recommends."""
    user, password = settings.postmark_webhook_user, settings.postmark_webhook_password
    if user is None or password is None:
        raise WebhookNotConfigured(
            InboundSource.POSTMARK, "POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD"
        )
    try:
        verify_basic_auth(headers.get("authorization"), user, password.get_secret_value())
    except SignatureInvalid as exc:
        raise WebhookUnauthenticated(exc) from None
    event = _read(lambda: postmark_event(body))
    return await take(pipeline, [(body, event)])


# --- Amazon SES through SNS


@lru_cache(maxsize=8)
def _sns_verifier(topics: tuple[str, ...], pinned: Path | None) -> SnsVerifier:
    """One verifier (and certificate cache) per configuration, for the process's life."""
    return SnsVerifier(topics, pinned=pinned.read_bytes() if pinned is not None else None)


async def receive_ses(
    settings: Settings, pipeline: InboundPipeline, body: bytes
) -> WebhookAccepted:
    """An SNS message from one of SES_SNS_TOPIC_ARNS: a notification carries SES's
    bounce, complaint or delivery JSON in `Message`. A subscription confirmation is logged
    for the operator to confirm (the API makes no request an inbound one asks for)."""
    if not settings.ses_sns_topic_arns:
        raise WebhookNotConfigured(InboundSource.SES, "SES_SNS_TOPIC_ARNS")
    payload = _read(lambda: _object(body))
    verifier = _sns_verifier(
        tuple(settings.ses_sns_topic_arns), settings.ses_sns_signing_certificate
    )
    try:
        await verifier.verify(payload)
    except TopicNotAllowed as exc:
        raise TopicRefused(str(exc)) from None
    except SignatureInvalid as exc:
        raise WebhookUnauthenticated(exc) from None
    envelope = _read(lambda: sns_message(body))
    if envelope.type != "Notification":
        log.warning(
            "SNS %s for %s: to confirm, visit %s (or confirm it in the AWS console)",
            envelope.type, envelope.topic_arn, envelope.subscribe_url,
        )  # fmt: skip
        return WebhookAccepted(
            received=0,
            note=f"{envelope.type} logged: the operator confirms it by visiting its "
            "SubscribeURL (in the API's log) or in the AWS console",
        )
    event = _read(lambda: ses_event(body))
    return await take(pipeline, [(body, event)])


def _object(body: bytes) -> dict[str, object]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeError):
        raise PayloadInvalid(("body",), "not JSON") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid(("body",), "expected an SNS message (a JSON object)")
    return payload
