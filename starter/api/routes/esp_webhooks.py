"""`POST /v1/webhooks/{ses,sendgrid,postmark,mailgun}`: bounces, complaints and deliveries
from the email provider a team sends through, verified as each provider signs them and
stored before the 2xx (docs/deliverability.md). No API key: the signature is the key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from starter.api.deps import Config, Sessions, Temporal
from starter.api.problems import problem_response
from starter.services.esp_webhooks import (
    InboundPipeline,
    WebhookAccepted,
    WebhookUnauthenticated,
    receive_mailgun,
    receive_postmark,
    receive_sendgrid,
    receive_ses,
)

router = APIRouter(tags=["deliverability"])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unsigned, badly signed or stale; the problem names what failed"},
    404: {"description": "This provider's webhook is not configured here (the setting named)"},
    422: {"description": "An event that can't be read; the problem names the field"},
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The documented body (the route reads the raw bytes: signatures cover them exactly)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _pipeline(settings: Config, sessions: Sessions, temporal: Temporal) -> InboundPipeline:
    return InboundPipeline(sessions, temporal, settings.task_queue)


@router.post(
    "/v1/webhooks/ses",
    response_model=WebhookAccepted,
    responses={**_ANSWERS, 403: {"description": "An SNS topic not in SES_SNS_TOPIC_ARNS"}},
    openapi_extra=_json_body({"type": "object", "description": "An SNS message"}),
)
async def ses_webhook(
    request: Request, settings: Config, sessions: Sessions, temporal: Temporal
) -> WebhookAccepted:
    """Amazon SES notifications through SNS (the topic's HTTPS subscription): the SNS
    signature is verified against AWS's certificate; a subscription confirmation is logged
    for the operator to confirm."""
    body = await request.body()
    return await receive_ses(settings, _pipeline(settings, sessions, temporal), body)


@router.post(
    "/v1/webhooks/sendgrid",
    response_model=WebhookAccepted,
    responses=_ANSWERS,
    openapi_extra=_json_body({"type": "array", "items": {"type": "object"}}),
)
async def sendgrid_webhook(
    request: Request, settings: Config, sessions: Sessions, temporal: Temporal
) -> WebhookAccepted:
    """SendGrid's Signed Event Webhook (ECDSA over the timestamp and the body)."""
    body = await request.body()
    pipeline = _pipeline(settings, sessions, temporal)
    return await receive_sendgrid(settings, pipeline, body, request.headers)


@router.post(
    "/v1/webhooks/postmark",
    response_model=WebhookAccepted,
    responses={**_ANSWERS, 401: {"description": "Missing or wrong HTTP basic credentials"}},
    openapi_extra=_json_body({"type": "object"}),
)
async def postmark_webhook(
    request: Request, settings: Config, sessions: Sessions, temporal: Temporal
) -> WebhookAccepted | JSONResponse:
    """Postmark's webhooks, with the HTTP basic credentials of the webhook URL."""
    body = await request.body()
    pipeline = _pipeline(settings, sessions, temporal)
    try:
        return await receive_postmark(settings, pipeline, body, request.headers)
    except WebhookUnauthenticated as exc:
        answer = problem_response(exc)
        answer.headers["WWW-Authenticate"] = 'Basic realm="postmark"'
        return answer


@router.post(
    "/v1/webhooks/mailgun",
    response_model=WebhookAccepted,
    responses={**_ANSWERS, 409: {"description": "This signature's token was already taken"}},
    openapi_extra=_json_body({"type": "object"}),
)
async def mailgun_webhook(
    request: Request, settings: Config, sessions: Sessions, temporal: Temporal
) -> WebhookAccepted:
    """Mailgun's webhooks (HMAC of a timestamp and a one-time token)."""
    body = await request.body()
    return await receive_mailgun(settings, _pipeline(settings, sessions, temporal), body)
