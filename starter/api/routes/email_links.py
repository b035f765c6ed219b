"""Public endpoints reached from emails: tracking (open pixel, click redirect), one-click
unsubscribe (RFC 8058) and double opt-in confirmation. No API key: each is authorised by a
signed token, and a forged, tampered or truncated token gets a 404, never a 500.

A GET never changes consent: mail scanners fetch links. The unsubscribe and confirmation
pages show a button that POSTs; mail clients POST `List-Unsubscribe=One-Click` directly.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from db.models import OutboxEmail
from db.suppression_list import SuppressionList
from journeys.dsl import EventType
from journeys.rendering import LINK_PATHS
from starter.api.pages import render_page
from starter.api.recent_keys import RecentKeys
from starter.services.consent import ConfirmOutcome, confirm, unsubscribe
from starter.services.errors import LeadNotFound
from starter.services.events import EventIn, record_event
from starter.services.link_tokens import LinkTokens, TokenInvalid
from starter.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Links whose click is also a download of the content behind them.
DOWNLOAD_LINKS = {"whitepaper", "case_study", "webinar_recording"}
# Request data is hostile: stored capped, and only ever shown escaped.
UA_MAX, REFERRER_MAX = 200, 300


def _page(settings: Settings, status: int = 200, **context: str) -> HTMLResponse:
    return render_page(settings, "page.html", status, **context)


def _not_found(settings: Settings) -> HTMLResponse:
    return _page(
        settings, 404, title="Link not valid", message="This link is not valid or has expired."
    )


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The requesting client's IP and (capped) user agent: consent evidence."""
    ip = request.client.host if request.client else None
    return ip, (request.headers.get("user-agent") or "")[:UA_MAX] or None


_INVALID_LINK: dict[str, Any] = {
    "description": "The link is not valid or has expired (an HTML page)",
    "content": {"text/html": {}},
}


def public_router(settings: Settings) -> APIRouter:
    """The routes; `settings` gives the signing key and the base URL of link targets."""
    tokens = LinkTokens(settings.require_secret_key())
    suppressions = SuppressionList(settings.require_secret_key())
    base = settings.public_base_url.rstrip("/")
    router = APIRouter(include_in_schema=True, tags=["public (signed links)"])

    # An email's lead never changes, and a recorded event needs no second recording.
    outbox_leads, recorded = RecentKeys(100_000), RecentKeys(100_000)

    async def _outbox_lead(request: Request, outbox_id: int) -> str | None:
        if (known := outbox_leads.get(outbox_id)) is not None:
            return str(known)
        async with request.app.state.sessions() as session:
            outbox = await session.get(OutboxEmail, outbox_id)
        if outbox is None:
            return None
        outbox_leads.put(outbox_id, outbox.lead_id)
        return outbox.lead_id

    async def _record(request: Request, lead_id: str, kind: EventType, event_id: str,
                      properties: dict[str, str | None]) -> None:  # fmt: skip
        if recorded.get((lead_id, event_id)):
            return
        try:
            await _record_now(request, lead_id, kind, event_id, properties)
        except LeadNotFound:
            return  # erased since the email went out: nothing to record
        recorded.put((lead_id, event_id))

    async def _record_now(request: Request, lead_id: str, kind: EventType, event_id: str,
                          properties: dict[str, str | None]) -> None:  # fmt: skip
        await record_event(
            request.app.state.temporal,
            request.app.state.sessions,
            EventIn.model_validate(
                {
                    "lead_id": lead_id,
                    "type": kind,
                    "event_id": event_id,
                    "properties": {k: v for k, v in properties.items() if v},
                }
            ),
            request.app.state.lifecycle,
        )

    @router.get(
        "/t/c/{token}",
        response_class=RedirectResponse,
        status_code=302,
        responses={404: _INVALID_LINK},
    )
    async def click(token: str, request: Request, background: BackgroundTasks) -> Response:
        """A tracked link: redirect to the target our own email named, record the click."""
        try:
            outbox_id, link = tokens.read_click(token)
            path = LINK_PATHS[link]
        except (TokenInvalid, KeyError):
            return _not_found(settings)
        lead_id = await _outbox_lead(request, outbox_id)
        if lead_id is None:
            return _not_found(settings)
        target = f"{base}{path}"
        _, user_agent = client_of(request)
        details = {
            "link": link,
            "url": target,
            "user_agent": user_agent,
            "referrer": (request.headers.get("referer") or "")[:REFERRER_MAX],
        }
        # Redirect first; the event is recorded after the response has gone.
        background.add_task(
            _record, request, lead_id, EventType.EMAIL_CLICK, f"click-{outbox_id}-{link}", details
        )
        if link in DOWNLOAD_LINKS:
            background.add_task(
                _record, request, lead_id, EventType.DOWNLOAD, f"download-{outbox_id}-{link}",
                details,
            )  # fmt: skip
        return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})

    @router.get(
        "/t/o/{token}.gif",
        response_class=Response,
        responses={
            200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF"},
            404: {"description": "Not one of our pixels"},
        },
    )
    async def open_pixel(token: str, request: Request, background: BackgroundTasks) -> Response:
        """The open-tracking pixel: a 1x1 GIF; the open is recorded once per email."""
        try:
            outbox_id = tokens.read_open(token)
        except TokenInvalid:
            return Response(status_code=404)
        lead_id = await _outbox_lead(request, outbox_id)
        if lead_id is not None:
            _, user_agent = client_of(request)
            background.add_task(
                _record, request, lead_id, EventType.EMAIL_OPEN, f"open-{outbox_id}",
                {"user_agent": user_agent},
            )  # fmt: skip
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @router.get("/u/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """The unsubscribe page: a button; looking at it changes nothing."""
        try:
            tokens.read_unsubscribe(token)
        except TokenInvalid:
            return _not_found(settings)
        return _page(
            settings,
            title="Unsubscribe",
            message="Do you want to stop receiving marketing emails from us?",
            action=f"/u/{token}",
            button="Unsubscribe",
        )

    @router.post("/u/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
    async def unsubscribe_now(token: str, request: Request) -> HTMLResponse:
        """One-click unsubscribe (RFC 8058) or the page's button. Repeating it is harmless."""
        try:
            lead_id = tokens.read_unsubscribe(token)
        except TokenInvalid:
            return _not_found(settings)
        ip, user_agent = client_of(request)
        await unsubscribe(
            request.app.state.lifecycle,
            request.app.state.sessions,
            suppressions,
            lead_id,
            source="one-click unsubscribe",
            ip=ip,
            user_agent=user_agent,
        )
        return _page(
            settings,
            title="You are unsubscribed",
            message="You will not receive marketing emails from us any more.",
        )

    @router.get("/c/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
    async def confirmation_page(token: str) -> HTMLResponse:
        """The double opt-in page: a button; looking at it confirms nothing."""
        try:
            tokens.read_confirm(token)
        except TokenInvalid:
            return _not_found(settings)
        return _page(
            settings,
            title="Confirm your subscription",
            message="Please confirm that we may send you emails about our products and events.",
            action=f"/c/{token}",
            button="Confirm",
        )

    @router.post(
        "/c/{token}",
        response_class=HTMLResponse,
        responses={
            404: _INVALID_LINK,
            409: {
                "description": "The link predates an unsubscribe: it subscribes nobody",
                "content": {"text/html": {}},
            },
        },
    )
    async def confirm_now(token: str, request: Request) -> HTMLResponse:
        """Confirm the double opt-in, with the evidence (time, IP, user agent, text version)."""
        try:
            lead_id, issued_at = tokens.read_confirm(token)
        except TokenInvalid:
            return _not_found(settings)
        ip, user_agent = client_of(request)
        outcome = await confirm(
            request.app.state.lifecycle,
            request.app.state.sessions,
            suppressions,
            lead_id,
            issued_at=issued_at,
            ip=ip,
            user_agent=user_agent,
            text_version=settings.consent_text_version,
        )
        match outcome:
            case ConfirmOutcome.CONFIRMED:
                return _page(settings, title="Thank you", message="Your subscription is confirmed.")
            case ConfirmOutcome.STALE | ConfirmOutcome.SUPPRESSED:
                return _page(
                    settings,
                    409,
                    title="Not subscribed",
                    message="You unsubscribed after this link was sent, so it no longer "
                    "subscribes you. To receive our emails again, sign up once more: we will "
                    "send you a new link.",
                )
            case ConfirmOutcome.ERASED:
                return _not_found(settings)

    return router
