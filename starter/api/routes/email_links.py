"""Public endpoints reached from emails: tracking (open pixel, click redirect), one-click
unsubscribe (RFC 8058) and double opt-in confirmation. No API key: each is authorised by a
signed token, and a forged, tampered or truncated token gets a 404, never a 500.

A GET never changes consent: mail scanners fetch links. The unsubscribe and confirmation
pages show a button that POSTs; mail clients POST `List-Unsubscribe=One-Click` directly.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from db.models import OutboxEmail
from journeys.dsl import EventType
from journeys.rendering import LINK_PATHS
from starter.api.deps import Config, Lifecycle, Sessions, State, Suppressions, Temporal, Tokens
from starter.api.pages import render_page
from starter.api.recent_keys import RecentKeys
from starter.services.consent import ConfirmOutcome, confirm, unsubscribe
from starter.services.errors import LeadNotFound
from starter.services.events import EventIn, record_event
from starter.services.lead_workflow import LeadLifecycle
from starter.services.link_tokens import TokenInvalid
from starter.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Links whose click is also a download of the content behind them.
DOWNLOAD_LINKS = {"whitepaper", "case_study", "webinar_recording"}
# Request data is hostile: stored capped, and only ever shown escaped.
UA_MAX, REFERRER_MAX = 200, 300

router = APIRouter(include_in_schema=True, tags=["public (signed links)"])

_INVALID_LINK: dict[str, Any] = {
    "description": "The link is not valid or has expired (an HTML page)",
    "content": {"text/html": {}},
}

T = TypeVar("T")


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The requesting client's IP and (capped) user agent: consent evidence."""
    ip = request.client.host if request.client else None
    return ip, (request.headers.get("user-agent") or "")[:UA_MAX] or None


def _base_url(settings: Settings) -> str:
    """Where link targets live (no trailing slash)."""
    return settings.public_base_url.rstrip("/")


def _page(settings: Settings, status: int = 200, **context: str) -> HTMLResponse:
    return render_page(settings, "page.html", status, **context)


def _not_found(settings: Settings) -> HTMLResponse:
    return _page(
        settings, 404, title="Link not valid", message="This link is not valid or has expired."
    )


def _valid(read: Callable[[str], T], token: str) -> T | None:
    """What `read` finds in `token`, or None for a forged, tampered or expired one."""
    try:
        return read(token)
    except TokenInvalid:
        return None


# Tracking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tracking:
    """Records what an email's tracked links report, each event once. An email's lead
    never changes, and a recorded event needs no second recording: both are remembered."""

    outbox_leads: RecentKeys
    recorded: RecentKeys
    temporal: Client
    sessions: async_sessionmaker[AsyncSession]
    lifecycle: LeadLifecycle

    async def lead_of(self, outbox_id: int) -> str | None:
        """The lead the email went to, or None if there is no such email."""
        if (known := self.outbox_leads.get(outbox_id)) is not None:
            return str(known)
        async with self.sessions() as session:
            outbox = await session.get(OutboxEmail, outbox_id)
        if outbox is None:
            return None
        self.outbox_leads.put(outbox_id, outbox.lead_id)
        return outbox.lead_id

    async def record(self, lead_id: str, kind: EventType, event_id: str,
                     properties: dict[str, str | None]) -> None:  # fmt: skip
        """Record the event (its empty properties left out), unless it already is."""
        if self.recorded.get((lead_id, event_id)):
            return
        event = {
            "lead_id": lead_id,
            "type": kind,
            "event_id": event_id,
            "properties": {k: v for k, v in properties.items() if v},
        }
        try:
            await record_event(
                self.temporal, self.sessions, EventIn.model_validate(event), self.lifecycle
            )
        except LeadNotFound:
            return  # erased since the email went out: nothing to record
        self.recorded.put((lead_id, event_id))


def _tracking(
    state: State, temporal: Temporal, sessions: Sessions, lifecycle: Lifecycle
) -> _Tracking:
    return _Tracking(state.outbox_leads, state.recorded_events, temporal, sessions, lifecycle)


Tracking = Annotated[_Tracking, Depends(_tracking)]


@router.get(
    "/t/c/{token}",
    response_class=RedirectResponse,
    status_code=302,
    responses={404: _INVALID_LINK},
)
async def click(
    token: str,
    request: Request,
    background: BackgroundTasks,
    settings: Config,
    tokens: Tokens,
    tracking: Tracking,
) -> Response:
    """A tracked link: redirect to the target our own email named, record the click."""
    try:
        outbox_id, link = tokens.read_click(token)
        path = LINK_PATHS[link]
    except (TokenInvalid, KeyError):
        return _not_found(settings)
    lead_id = await tracking.lead_of(outbox_id)
    if lead_id is None:
        return _not_found(settings)
    target = f"{_base_url(settings)}{path}"
    _, user_agent = client_of(request)
    details = {
        "link": link,
        "url": target,
        "user_agent": user_agent,
        "referrer": (request.headers.get("referer") or "")[:REFERRER_MAX],
    }
    # Redirect first; the event is recorded after the response has gone.
    background.add_task(
        tracking.record, lead_id, EventType.EMAIL_CLICK, f"click-{outbox_id}-{link}", details
    )
    if link in DOWNLOAD_LINKS:
        background.add_task(
            tracking.record, lead_id, EventType.DOWNLOAD, f"download-{outbox_id}-{link}", details
        )
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(
    "/t/o/{token}.gif",
    response_class=Response,
    responses={
        200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF"},
        404: {"description": "Not one of our pixels"},
    },
)
async def open_pixel(
    token: str, request: Request, background: BackgroundTasks, tokens: Tokens, tracking: Tracking
) -> Response:
    """The open-tracking pixel: a 1x1 GIF; the open is recorded once per email."""
    outbox_id = _valid(tokens.read_open, token)
    if outbox_id is None:
        return Response(status_code=404)
    lead_id = await tracking.lead_of(outbox_id)
    if lead_id is not None:
        _, user_agent = client_of(request)
        background.add_task(
            tracking.record, lead_id, EventType.EMAIL_OPEN, f"open-{outbox_id}",
            {"user_agent": user_agent},
        )  # fmt: skip
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


# Consent: a GET shows a page with a button, whose POST applies ----------------------------


@dataclass(frozen=True)
class _AskingPage:
    """The page a consent link shows: it asks, and its button POSTs back to the link."""

    path: str
    title: str
    message: str
    button: str

    def answer(self, settings: Settings, token: str, read: Callable[[str], object]) -> HTMLResponse:
        """The page for `token` (looking at it changes nothing), or 404 if it is not valid."""
        if _valid(read, token) is None:
            return _not_found(settings)
        return _page(
            settings,
            title=self.title,
            message=self.message,
            action=f"{self.path}/{token}",
            button=self.button,
        )


_UNSUBSCRIBE = _AskingPage(
    "/u",
    title="Unsubscribe",
    message="Do you want to stop receiving marketing emails from us?",
    button="Unsubscribe",
)
_CONFIRM = _AskingPage(
    "/c",
    title="Confirm your subscription",
    message="Please confirm that we may send you emails about our products and events.",
    button="Confirm",
)


@router.get("/u/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
async def unsubscribe_page(token: str, settings: Config, tokens: Tokens) -> HTMLResponse:
    """The unsubscribe page: a button; looking at it changes nothing."""
    return _UNSUBSCRIBE.answer(settings, token, tokens.read_unsubscribe)


@router.post("/u/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
async def unsubscribe_now(
    token: str,
    request: Request,
    settings: Config,
    tokens: Tokens,
    lifecycle: Lifecycle,
    sessions: Sessions,
    suppressions: Suppressions,
) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058) or the page's button. Repeating it is harmless."""
    lead_id = _valid(tokens.read_unsubscribe, token)
    if lead_id is None:
        return _not_found(settings)
    ip, user_agent = client_of(request)
    await unsubscribe(
        lifecycle, sessions, suppressions, lead_id,
        source="one-click unsubscribe", ip=ip, user_agent=user_agent,
    )  # fmt: skip
    return _page(
        settings,
        title="You are unsubscribed",
        message="You will not receive marketing emails from us any more.",
    )


@router.get("/c/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
async def confirmation_page(token: str, settings: Config, tokens: Tokens) -> HTMLResponse:
    """The double opt-in page: a button; looking at it confirms nothing."""
    return _CONFIRM.answer(settings, token, tokens.read_confirm)


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
async def confirm_now(
    token: str,
    request: Request,
    settings: Config,
    tokens: Tokens,
    lifecycle: Lifecycle,
    sessions: Sessions,
    suppressions: Suppressions,
) -> HTMLResponse:
    """Confirm the double opt-in, with the evidence (time, IP, user agent, text version)."""
    read = _valid(tokens.read_confirm, token)
    if read is None:
        return _not_found(settings)
    lead_id, issued_at = read
    ip, user_agent = client_of(request)
    outcome = await confirm(
        lifecycle, sessions, suppressions, lead_id,
        issued_at=issued_at, ip=ip, user_agent=user_agent,
        text_version=settings.consent_text_version,
    )  # fmt: skip
    return _confirmed_page(settings, outcome)


def _confirmed_page(settings: Settings, outcome: ConfirmOutcome) -> HTMLResponse:
    """What the person sees once their confirmation is handled."""
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
