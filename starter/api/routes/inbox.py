"""The sales inbox: a server-rendered page where a rep logs in with their API key, sees
the MQLs assigned to them with each score explanation, and accepts or rejects them.

No front-end build: Jinja2 templates and HTML forms. Sessions are held server-side
(`inbox_sessions`): the HttpOnly, SameSite=Strict cookie carries a random token whose
SHA-256 names the session, so signing out (or 12 hours) ends it, and removing a key from
NURTURE_API_KEYS ends its sessions. Every form carries the session's own CSRF token. The
sign-in form is protected too (a cookie-bound token and an Origin check), so another site
can't sign a visitor into a session of its choosing; failed sign-ins count against the
client address with unknown API keys (429). Notices shown on the page come from a fixed
list, never from the URL's text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete, select

from db.models import InboxSession, Lead, as_utc
from journeys.dsl import LifecycleStage
from journeys.lifecycle import FeedbackOutcome
from starter.api.auth import holder_of
from starter.api.pages import pages
from starter.api.rate_limits import AttemptLimiter
from starter.api.request_guard import client_address, same_site
from starter.api.roles import caller_name
from starter.services.errors import ApiProblem
from starter.services.sales import SalesFeedbackIn, give_feedback
from starter.services.score_explanation import explain_score
from starter.settings import ApiKeyHolder, Role, Settings

COOKIE = "nurture_inbox"
LOGIN_COOKIE = "nurture_inbox_login"  # binds the sign-in form to the browser that got it
SESSION_HOURS = 12
# What the page may say after an action: a code in the URL picks one of these.
NOTICES = {
    "accepted": "Accepted: the lead is now {stage}.",
    "rejected": "Rejected: the lead is now {stage}.",
    "reason_needed": "Say why you reject the lead.",
    "signed_out": "You are signed out.",
}
LeadId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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


def inbox_router(settings: Settings, failed_auth: AttemptLimiter) -> APIRouter:
    """`/inbox`, `/inbox/login`, `/inbox/logout`, `/inbox/leads/{id}/feedback`.
    `failed_auth` counts wrong keys per client address (shared with the API's keys)."""
    router = APIRouter(include_in_schema=False)
    secure = settings.public_base_url.startswith("https://")

    async def session_of(request: Request) -> tuple[ApiKeyHolder, InboxSession] | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 200:
            return None
        async with request.app.state.sessions() as db:
            found = await db.get(InboxSession, _token_hash(token))
        if found is None or as_utc(found.expires_at) <= datetime.now(UTC):
            return None
        keys: dict[str, ApiKeyHolder] = request.app.state.api_keys
        for key, holder in keys.items():
            if hmac.compare_digest(_fingerprint(key), found.key_fingerprint):
                return holder, found
        return None

    async def inbox_leads(request: Request, holder: ApiKeyHolder) -> list[dict[str, Any]]:
        query = select(Lead).where(Lead.lifecycle_stage == "mql", Lead.erased_at.is_(None))
        if holder.rep is not None:
            query = query.where(Lead.owner == holder.rep)
        now = datetime.now(UTC)
        items = []
        async with request.app.state.sessions() as session:
            for lead in (await session.execute(query.order_by(Lead.score.desc()))).scalars():
                items.append({"lead": lead, "score": await explain_score(session, lead, now)})
        return items

    def login_form(status: int = 200, error: str | None = None) -> HTMLResponse:
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
            secure=secure,
            path="/inbox/login",
        )
        return page

    @router.get("/inbox/login", response_class=HTMLResponse)
    async def login_page() -> HTMLResponse:
        return login_form()

    @router.post("/inbox/login", response_class=HTMLResponse)
    async def login(
        request: Request,
        key: Annotated[str, Form(max_length=500)] = "",
        login_token: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        address = client_address(request.scope)
        if (wait := failed_auth.retry_after(address)) is not None:
            page = login_form(429, "Too many failed sign-ins from here: try again in a minute.")
            page.headers["Retry-After"] = str(wait)
            return page
        cookie_nonce = request.cookies.get(LOGIN_COOKIE, "")
        if (
            not same_site(request.headers, str(request.url), settings.public_base_url)
            or not cookie_nonce
            or not hmac.compare_digest(cookie_nonce, login_token)
        ):
            return login_form(403, "This sign-in form has expired: please sign in again.")
        holder = holder_of(request.app.state.api_keys, key.strip()) if key else None
        if holder is None or holder.role not in (Role.SALES, Role.ADMIN):
            if holder is None:
                failed_auth.record(address)
            message = (
                "That key is not a sales key." if holder else "Unknown key: check and try again."
            )
            return login_form(401, message)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with request.app.state.sessions() as db:
            await db.execute(delete(InboxSession).where(InboxSession.expires_at < now))
            db.add(
                InboxSession(
                    token_hash=_token_hash(token),
                    key_fingerprint=_fingerprint(key.strip()),
                    csrf=secrets.token_urlsafe(32),
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                )
            )
            await db.commit()
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/inbox",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/inbox/login")
        return response

    @router.post("/inbox/logout")
    async def logout(request: Request) -> Response:
        """Sign out: the session ends on the server, whatever happens to the cookie."""
        token = request.cookies.get(COOKIE)
        if token and len(token) <= 200:
            async with request.app.state.sessions() as db:
                await db.execute(
                    delete(InboxSession).where(InboxSession.token_hash == _token_hash(token))
                )
                await db.commit()
        response = RedirectResponse("/inbox/login", status_code=303)
        response.delete_cookie(COOKIE, path="/inbox")
        return response

    @router.get("/inbox", response_class=HTMLResponse)
    async def inbox(
        request: Request, notice: str | None = None, stage: str | None = None
    ) -> Response:
        found = await session_of(request)
        if found is None:
            return RedirectResponse("/inbox/login", status_code=303)
        holder, session = found
        return _render(
            "inbox.html",
            title="Sales inbox",
            who=holder.rep or "all reps",
            items=await inbox_leads(request, holder),
            csrf=session.csrf,
            notice=notice_text(notice, stage),
        )

    @router.post("/inbox/leads/{lead_id}/feedback", response_class=HTMLResponse)
    async def feedback(
        lead_id: LeadId,
        request: Request,
        outcome: Annotated[str, Form(max_length=20)] = "",
        reason: Annotated[str, Form(max_length=500)] = "",
        csrf: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        found = await session_of(request)
        if found is None:
            return RedirectResponse("/inbox/login", status_code=303)
        holder, session = found
        if not csrf or not hmac.compare_digest(csrf, session.csrf):
            return _error(403, "Expired form", "This form has expired: reload the inbox.")
        async with request.app.state.sessions() as db:
            lead = await db.get(Lead, lead_id)
        if lead is None or (holder.rep is not None and lead.owner != holder.rep):
            return _error(404, "Not in your inbox", "This lead is not assigned to you.")
        if outcome not in (FeedbackOutcome.ACCEPT, FeedbackOutcome.REJECT):
            return _error(422, "Choose accept or reject", "Choose accept or reject.")
        if outcome == FeedbackOutcome.REJECT and not reason.strip():
            return RedirectResponse("/inbox?notice=reason_needed", 303)
        try:
            result = await give_feedback(
                request.app.state.lifecycle,
                request.app.state.sessions,
                lead_id,
                SalesFeedbackIn(
                    outcome=FeedbackOutcome(outcome),
                    reason=reason.strip() or None,
                    rep=holder.rep,
                ),
                request_id=None,
                actor=caller_name(holder),
            )
        except ApiProblem as problem:
            return _error(problem.status, "Not applied", problem.message)
        code = "accepted" if outcome == FeedbackOutcome.ACCEPT else "rejected"
        query = urlencode({"notice": code, "stage": result.stage})
        return RedirectResponse(f"/inbox?{query}", status_code=303)

    return router
