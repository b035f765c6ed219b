"""The sales inbox: a server-rendered page where a rep logs in with their API key, sees
the MQLs assigned to them with each score explanation, and accepts or rejects them.

No front-end build: Jinja2 templates and HTML forms. Sessions are held server-side
(`inbox_sessions`): the HttpOnly, SameSite=Strict cookie carries a random token whose
SHA-256 names the session, so signing out (or 12 hours) ends it, and removing a key from
NURTURE_API_KEYS ends its sessions. Every form carries the session's own CSRF token. The
sign-in form is protected too (a cookie-bound token and an Origin check), so another site
can't sign a visitor into a session of its choosing; failed sign-ins count against the
client address with unknown API keys (429, the limiter the API's keys share). Notices
shown on the page come from a fixed list, never from the URL's text.

Routes: `/inbox`, `/inbox/login`, `/inbox/logout`, `/inbox/leads/{id}/feedback`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboxSession, Lead, as_utc
from journeys.dsl import LifecycleStage
from journeys.lifecycle import FeedbackOutcome
from starter.api.auth import caller_name, holder_of
from starter.api.deps import Config, Lifecycle, Sessions, State
from starter.api.pages import pages
from starter.api.paths import LeadId
from starter.api.problems import STATUS
from starter.api.request_guard import client_address, same_site
from starter.services.deliverability import MailNotice, mail_notices
from starter.services.errors import Problem
from starter.services.sales import SalesFeedbackIn, give_feedback
from starter.services.score_explanation import explain_score
from starter.settings import ApiKeyHolder, Role, Settings

COOKIE = "nurture_inbox"
LOGIN_COOKIE = "nurture_inbox_login"  # binds the sign-in form to the browser that got it
SESSION_HOURS = 12
MAX_TOKEN = 200  # a longer session cookie is no token of ours
# What the page may say after an action: a code in the URL picks one of these.
NOTICES = {
    "accepted": "Accepted: the lead is now {stage}.",
    "rejected": "Rejected: the lead is now {stage}.",
    "reason_needed": "Say why you reject the lead.",
    "signed_out": "You are signed out.",
}

router = APIRouter(include_in_schema=False)


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _secure(settings: Settings) -> bool:
    """Whether cookies are sent over HTTPS only (when the API is served over HTTPS)."""
    return settings.public_base_url.startswith("https://")


def notice_text(code: str | None, stage: str | None) -> str:
    """The notice a code stands for (unknown codes: none); a stage only if it is one."""
    template = NOTICES.get(code or "")
    if template is None:
        return ""
    known = {s.value for s in LifecycleStage}
    return template.format(stage=stage if stage in known else "updated")


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page; the security headers (CSP, framing) come from `SecurityHeaders`."""
    html = pages().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, title: str, message: str) -> HTMLResponse:
    return _render("inbox_error.html", status=status, title=title, message=message)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/inbox/login", status_code=303)


@dataclass(frozen=True)
class SignedIn:
    """The key a live inbox session was opened with, and the session."""

    holder: ApiKeyHolder
    session: InboxSession


async def _signed_in(request: Request, state: State, sessions: Sessions) -> SignedIn | None:
    """The visitor's live session, if their cookie names one whose key is still configured."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > MAX_TOKEN:
        return None
    async with sessions() as db:
        found = await db.get(InboxSession, _token_hash(token))
    if found is None or as_utc(found.expires_at) <= datetime.now(UTC):
        return None
    for key, holder in state.api_keys.items():
        if hmac.compare_digest(_fingerprint(key), found.key_fingerprint):
            return SignedIn(holder, found)
    return None


# The visitor's session, or None (not signed in, expired, or the key was removed).
Visitor = Annotated[SignedIn | None, Depends(_signed_in)]


async def _inbox_leads(
    sessions: async_sessionmaker[AsyncSession], holder: ApiKeyHolder
) -> list[dict[str, Any]]:
    """The MQLs `holder` sees (a rep's own; all for an admin), best score first."""
    query = select(Lead).where(Lead.lifecycle_stage == "mql", Lead.erased_at.is_(None))
    if holder.rep is not None:
        query = query.where(Lead.owner == holder.rep)
    now = datetime.now(UTC)
    items = []
    async with sessions() as session:
        for lead in (await session.execute(query.order_by(Lead.score.desc()))).scalars():
            items.append({"lead": lead, "score": await explain_score(session, lead, now)})
    return items


async def _mail_notices(
    sessions: async_sessionmaker[AsyncSession], holder: ApiKeyHolder
) -> list[MailNotice]:
    """Replies and out-of-office notices of the leads `holder` was told about (a rep's
    own; all for an admin)."""
    async with sessions() as session:
        return await mail_notices(session, holder.rep, datetime.now(UTC))


def _login_form(settings: Settings, status: int = 200, error: str | None = None) -> HTMLResponse:
    """The sign-in page, with a fresh form token bound to this browser by a cookie."""
    nonce = secrets.token_urlsafe(24)
    page = _render(
        "inbox_login.html",
        status=status,
        title="Sales inbox: sign in",
        error=error,
        login_token=nonce,
    )
    page.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(settings),
        path="/inbox/login",
    )
    return page


def _form_is_ours(request: Request, settings: Settings, login_token: str) -> bool:
    """Whether the sign-in was posted from our site, by the browser we gave the form to."""
    cookie_nonce = request.cookies.get(LOGIN_COOKIE, "")
    return (
        same_site(request.headers, str(request.url), settings.public_base_url)
        and bool(cookie_nonce)
        and hmac.compare_digest(cookie_nonce, login_token)
    )


async def _open_session(sessions: async_sessionmaker[AsyncSession], key: str) -> str:
    """A new session for `key` (expired ones are cleared); its token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with sessions() as db:
        await db.execute(delete(InboxSession).where(InboxSession.expires_at < now))
        db.add(
            InboxSession(
                token_hash=_token_hash(token),
                key_fingerprint=_fingerprint(key),
                csrf=secrets.token_urlsafe(32),
                expires_at=now + timedelta(hours=SESSION_HOURS),
            )
        )
        await db.commit()
    return token


def _signed_in_response(settings: Settings, token: str) -> RedirectResponse:
    """To the inbox, with the session cookie set and the sign-in form's cookie gone."""
    response = RedirectResponse("/inbox", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=_secure(settings),
        path="/inbox",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/inbox/login")
    return response


@router.get("/inbox/login", response_class=HTMLResponse)
async def login_page(settings: Config) -> HTMLResponse:
    return _login_form(settings)


@router.post("/inbox/login", response_class=HTMLResponse)
async def login(
    request: Request,
    state: State,
    sessions: Sessions,
    key: Annotated[str, Form(max_length=500)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Sign in with a sales (or admin) key; unknown keys count against the address."""
    settings, failed_auth = state.settings, state.failed_auth
    address = client_address(request.scope)
    if (wait := failed_auth.retry_after(address)) is not None:
        page = _login_form(
            settings, 429, "Too many failed sign-ins from here: try again in a minute."
        )
        page.headers["Retry-After"] = str(wait)
        return page
    if not _form_is_ours(request, settings, login_token):
        return _login_form(settings, 403, "This sign-in form has expired: please sign in again.")
    holder = holder_of(state.api_keys, key.strip()) if key else None
    if holder is None or holder.role not in (Role.SALES, Role.ADMIN):
        if holder is None:
            failed_auth.record(address)
        message = "That key is not a sales key." if holder else "Unknown key: check and try again."
        return _login_form(settings, 401, message)
    token = await _open_session(sessions, key.strip())
    return _signed_in_response(settings, token)


@router.post("/inbox/logout")
async def logout(request: Request, sessions: Sessions) -> Response:
    """Sign out: the session ends on the server, whatever happens to the cookie."""
    token = request.cookies.get(COOKIE)
    if token and len(token) <= MAX_TOKEN:
        async with sessions() as db:
            await db.execute(
                delete(InboxSession).where(InboxSession.token_hash == _token_hash(token))
            )
            await db.commit()
    response = _to_login()
    response.delete_cookie(COOKIE, path="/inbox")
    return response


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(
    visitor: Visitor, sessions: Sessions, notice: str | None = None, stage: str | None = None
) -> Response:
    """The signed-in rep's MQLs, each with its score explanation, and what their leads
    wrote back (replies, out-of-office notices with the deputy they name)."""
    if visitor is None:
        return _to_login()
    return _render(
        "inbox.html",
        title="Sales inbox",
        who=visitor.holder.rep or "all reps",
        items=await _inbox_leads(sessions, visitor.holder),
        mail=await _mail_notices(sessions, visitor.holder),
        csrf=visitor.session.csrf,
        notice=notice_text(notice, stage),
    )


@router.post("/inbox/leads/{lead_id}/feedback", response_class=HTMLResponse)
async def feedback(
    lead_id: LeadId,
    visitor: Visitor,
    sessions: Sessions,
    lifecycle: Lifecycle,
    outcome: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Accept or reject (with a reason) one of the rep's leads, from the inbox's form."""
    if visitor is None:
        return _to_login()
    holder = visitor.holder
    if not csrf or not hmac.compare_digest(csrf, visitor.session.csrf):
        return _error(403, "Expired form", "This form has expired: reload the inbox.")
    async with sessions() as db:
        lead = await db.get(Lead, lead_id)
    if lead is None or (holder.rep is not None and lead.owner != holder.rep):
        return _error(404, "Not in your inbox", "This lead is not assigned to you.")
    if outcome not in (FeedbackOutcome.ACCEPT, FeedbackOutcome.REJECT):
        return _error(422, "Choose accept or reject", "Choose accept or reject.")
    if outcome == FeedbackOutcome.REJECT and not reason.strip():
        return RedirectResponse("/inbox?notice=reason_needed", 303)
    given = SalesFeedbackIn(
        outcome=FeedbackOutcome(outcome), reason=reason.strip() or None, rep=holder.rep
    )
    try:
        result = await give_feedback(
            lifecycle, sessions, lead_id, given, request_id=None, actor=caller_name(holder)
        )
    except Problem as problem:
        return _error(STATUS[problem.refusal], "Not applied", problem.message)
    code = "accepted" if outcome == FeedbackOutcome.ACCEPT else "rejected"
    query = urlencode({"notice": code, "stage": result.stage})
    return RedirectResponse(f"/inbox?{query}", status_code=303)
