"""Public endpoints reached from emails: tracking (open pixel, click redirect), one-click
unsubscribe (RFC 8058) and double opt-in confirmation. No API key: each is authorised by a
signed token, and a forged, tampered or truncated token gets a 404, never a 500.

A GET never changes consent: mail scanners fetch links. The unsubscribe and confirmation
pages show a button that POSTs; mail clients POST `List-Unsubscribe=One-Click` directly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.email_links import LinkTarget, link_target
from db.models import OutboxEmail, utcnow
from journeys.dsl import EventType
from journeys.rendering import LINK_PATHS, OWN_LINKS
from journeys.topics import UnknownTopicError, get_topic
from starter.api.deps import (
    Clicks,
    Config,
    Intake,
    Lifecycle,
    Sessions,
    State,
    Suppressions,
    Tokens,
)
from starter.api.pages import render_page
from starter.api.recent_keys import RecentKeys
from starter.services.click_counts import ClickCounts
from starter.services.consent import ConfirmOutcome, confirm, unsubscribe
from starter.services.errors import LeadNotFound
from starter.services.event_intake import EventIntake
from starter.services.events import EventIn
from starter.services.link_tokens import TokenInvalid
from starter.services.preferences import is_topic, unsubscribe_topic
from starter.settings import Settings

log = logging.getLogger(__name__)

# How long a redirect or a pixel waits for its event's commit before answering anyway.
RECORD_WAIT = 1.0

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Links whose click is also a download of the content behind them.
DOWNLOAD_LINKS = {"whitepaper", "case_study", "webinar_recording"}
# Request data is hostile: stored capped, and only ever shown escaped.
UA_MAX, REFERRER_MAX = 200, 300
# A click event keeps this much of its target URL.
URL_MAX = 1000

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
    """Where Nurture's own pages live (no trailing slash)."""
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
    sessions: async_sessionmaker[AsyncSession]
    intake: EventIntake
    click_counts: ClickCounts

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

    async def link(self, outbox_id: int, position: int) -> LinkTarget | None:
        """Where link `position` of the email leads (None: no such link). Read each time,
        not remembered: an erasure blanks it, and from then on no API process may
        redirect there."""
        async with self.sessions() as session:
            return await link_target(session, outbox_id, position)

    def count(self, outbox_id: int, position: int) -> None:
        """Count a click on the link (every click, for the per-link analytics; written
        with others a moment later)."""
        self.click_counts.add(outbox_id, position, utcnow())

    async def record(self, lead_id: str, kind: EventType, event_id: str,
                     properties: dict[str, str | None]) -> None:  # fmt: skip
        """Record the event (its empty properties left out), unless it already is: stored
        when this returns, signalled to the lead's workflows right after. A failure is
        logged, not raised: the person still gets where the link leads."""
        if self.recorded.get((lead_id, event_id)):
            return
        event = {
            "lead_id": lead_id,
            "type": kind,
            "event_id": event_id,
            "properties": {k: v for k, v in properties.items() if v},
        }
        try:
            await self.intake.record(EventIn.model_validate(event))
        except LeadNotFound:
            return  # erased since the email went out: nothing to record
        except Exception as exc:  # the database is down: the redirect still goes
            log.warning("%s of lead %s not recorded: %s", event_id, lead_id, exc)
            return
        self.recorded.put((lead_id, event_id))

    async def record_before_answering(
        self, lead_id: str, events: list[tuple[EventType, str]], properties: dict[str, str | None]
    ) -> None:
        """Record the events (in one commit) before the answer goes, waiting at most
        `RECORD_WAIT` seconds: past that (a database slow to commit), the answer goes and
        the recording finishes after it."""
        recording = asyncio.gather(
            *(self.record(lead_id, kind, event_id, properties) for kind, event_id in events)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(recording), RECORD_WAIT)


async def _tracking(state: State, sessions: Sessions, intake: Intake, clicks: Clicks) -> _Tracking:
    return _Tracking(state.outbox_leads, state.recorded_events, sessions, intake, clicks)


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
    settings: Config,
    tokens: Tokens,
    tracking: Tracking,
) -> Response:
    """A tracked link: redirect to the target stored for this link of our email (or, for
    a link sent before links were stored, our named link's target), record the click."""
    found = await _click_of(token, settings, tokens, tracking)
    if found is None:
        return _not_found(settings)
    _, user_agent = client_of(request)
    details = {
        "link": found.link,
        "url": found.target[:URL_MAX],
        "user_agent": user_agent,
        "referrer": (request.headers.get("referer") or "")[:REFERRER_MAX],
    }
    # The click is stored (once per link) before the redirect goes: many requests' rows
    # share a commit (`EventIntake`), so it costs the redirect little; its signals to the
    # workflows and the link's counter come after.
    event_id = f"{found.outbox_id}-{found.key}"
    events = [(EventType.EMAIL_CLICK, f"click-{event_id}")]
    if found.link in DOWNLOAD_LINKS:
        events.append((EventType.DOWNLOAD, f"download-{event_id}"))
    await tracking.record_before_answering(found.lead_id, events, details)
    if found.position is not None:
        tracking.count(found.outbox_id, found.position)
    return RedirectResponse(found.target, status_code=302, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class _Click:
    """A followed link: whose email, where to, which link (its name, else `#<position>`)."""

    outbox_id: int
    lead_id: str
    target: str
    link: str
    key: str  # in the event id: the position, or an older link's name
    position: int | None  # None: an older link, not stored


async def _click_of(
    token: str, settings: Settings, tokens: Tokens, tracking: _Tracking
) -> _Click | None:
    """What a click token names, or None for a forged one, a link we never sent or one
    whose target erasure blanked."""
    if (stored := _valid(tokens.read_link, token)) is not None:
        outbox_id, position = stored
        target = await tracking.link(outbox_id, position)
        if target is None or not target.url:  # no such link, or its lead was erased
            return None
        name = target.name or f"#{position}"
        return _Click(outbox_id, target.lead_id, target.url, name, str(position), position)
    # Sent before links were stored: the token names one of our named links.
    older = _valid(tokens.read_click, token)
    if older is None or older[1] not in LINK_PATHS:
        return None
    outbox_id, name = older
    lead_id = await tracking.lead_of(outbox_id)
    if lead_id is None:
        return None
    if name in OWN_LINKS:  # the preferences page, now the lead's own
        url = f"{_base_url(settings)}/p/{tokens.preferences(lead_id)}"
    else:
        url = f"{settings.website_url}{LINK_PATHS[name]}"
    return _Click(outbox_id, lead_id, url, name, name, None)


@router.get(
    "/t/o/{token}.gif",
    response_class=Response,
    responses={
        200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF"},
        404: {"description": "Not one of our pixels"},
    },
)
async def open_pixel(token: str, request: Request, tokens: Tokens, tracking: Tracking) -> Response:
    """The open-tracking pixel: a 1x1 GIF; the open is recorded once per email."""
    outbox_id = _valid(tokens.read_open, token)
    if outbox_id is None:
        return Response(status_code=404)
    lead_id = await tracking.lead_of(outbox_id)
    if lead_id is not None:
        _, user_agent = client_of(request)
        await tracking.record_before_answering(
            lead_id, [(EventType.EMAIL_OPEN, f"open-{outbox_id}")], {"user_agent": user_agent}
        )
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


def _topic_label(topic: str) -> str:
    try:
        return get_topic(topic).label
    except UnknownTopicError:
        return topic


@router.get("/u/{token}", response_class=HTMLResponse, responses={404: _INVALID_LINK})
async def unsubscribe_page(token: str, settings: Config, tokens: Tokens) -> HTMLResponse:
    """The unsubscribe page: a button; looking at it changes nothing. A message's own
    link (`List-Unsubscribe`) unsubscribes from its topic, the footer's from everything."""
    found = _valid(tokens.read_unsubscribe_from, token)
    if found is None or found[1] is None or not is_topic(found[1]):
        return _UNSUBSCRIBE.answer(settings, token, tokens.read_unsubscribe)
    return _page(
        settings,
        title="Unsubscribe",
        message=f"Do you want to stop receiving these emails from us: {_topic_label(found[1])}?",
        action=f"/u/{token}",
        button="Unsubscribe",
    )


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
    """One-click unsubscribe (RFC 8058) or the page's button: from the message's topic
    (the `List-Unsubscribe` link), or from everything (the footer's). Repeating it is
    harmless."""
    found = _valid(tokens.read_unsubscribe_from, token)
    if found is None:
        return _not_found(settings)
    lead_id, topic = found
    ip, user_agent = client_of(request)
    # A topic removed or renamed since the message was sent: the person asked to stop
    # these emails, and we can no longer tell which they are, so everything stops.
    if topic is not None and is_topic(topic):
        if not await unsubscribe_topic(
            sessions, lead_id, topic,
            source="one-click unsubscribe", ip=ip, user_agent=user_agent,
        ):  # fmt: skip
            return _not_found(settings)
        return _page(
            settings,
            title="You are unsubscribed",
            message=f"You will not receive these emails from us any more: "
            f"{_topic_label(topic)}. The link at the bottom of our emails lets you choose "
            "what else you receive, or unsubscribe from everything.",
        )
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
