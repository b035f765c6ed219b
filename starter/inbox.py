"""The sales inbox: a server-rendered page where a rep logs in with their API key, sees
the MQLs assigned to them with each score explanation, and accepts or rejects them.

No front-end build: Jinja2 templates and HTML forms. The session is a signed, HttpOnly,
SameSite=Strict cookie naming the key by its fingerprint (so removing a key from
NURTURE_API_KEYS ends its sessions); every form carries a CSRF token bound to it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from activities.scoring import explain_score
from db.models import Lead
from journeys.lifecycle import FeedbackOutcome
from starter.auth import holder_of
from starter.errors import ApiProblem
from starter.sales import give_feedback
from starter.settings import ApiKeyHolder, Role, Settings
from workflows.contracts import SalesFeedback

COOKIE = "nurture_inbox"
SESSION_HOURS = 12
LeadId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


@cache
def _templates() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(FilePath(__file__).with_name("templates")),
        autoescape=select_autoescape(default=True),
    )


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(**context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
        },
    )


def _error(status: int, title: str, message: str) -> HTMLResponse:
    return _render("inbox_error.html", status=status, title=title, message=message)


def inbox_router(settings: Settings) -> APIRouter:
    """`/inbox`, `/inbox/login`, `/inbox/logout`, `/inbox/leads/{id}/feedback`."""
    router = APIRouter(include_in_schema=False)
    signer = URLSafeTimedSerializer(settings.require_secret_key(), salt="nurture-inbox")
    secure = settings.public_base_url.startswith("https://")

    def holder_from_cookie(request: Request) -> tuple[ApiKeyHolder, str] | None:
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 1000:
            return None
        try:
            fingerprint = signer.loads(raw, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return None
        keys: dict[str, ApiKeyHolder] = request.app.state.api_keys
        for key, holder in keys.items():
            if _fingerprint(key) == fingerprint:
                return holder, fingerprint
        return None

    def csrf_for(fingerprint: str) -> str:
        return signer.dumps(["csrf", fingerprint])

    def csrf_ok(token: str, fingerprint: str) -> bool:
        try:
            return signer.loads(token, max_age=SESSION_HOURS * 3600) == ["csrf", fingerprint]
        except BadSignature:
            return False

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

    @router.get("/inbox/login", response_class=HTMLResponse)
    async def login_page() -> HTMLResponse:
        return _render("inbox_login.html", title="Sales inbox: sign in")

    @router.post("/inbox/login", response_class=HTMLResponse)
    async def login(request: Request, key: Annotated[str, Form(max_length=500)] = "") -> Response:
        holder = holder_of(request.app.state.api_keys, key.strip()) if key else None
        if holder is None or holder.role not in (Role.SALES, Role.ADMIN):
            message = (
                "That key is not a sales key." if holder else "Unknown key: check and try again."
            )
            return _render(
                "inbox_login.html", status=401, title="Sales inbox: sign in", error=message
            )
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(
            COOKIE,
            signer.dumps(_fingerprint(key.strip())),
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/inbox",
        )
        return response

    @router.post("/inbox/logout")
    async def logout() -> Response:
        response = RedirectResponse("/inbox/login", status_code=303)
        response.delete_cookie(COOKIE, path="/inbox")
        return response

    @router.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request, notice: str | None = None) -> Response:
        session = holder_from_cookie(request)
        if session is None:
            return RedirectResponse("/inbox/login", status_code=303)
        holder, fingerprint = session
        return _render(
            "inbox.html",
            title="Sales inbox",
            who=holder.rep or "all reps",
            items=await inbox_leads(request, holder),
            csrf=csrf_for(fingerprint),
            notice=(notice or "")[:200],
        )

    @router.post("/inbox/leads/{lead_id}/feedback", response_class=HTMLResponse)
    async def feedback(
        lead_id: LeadId,
        request: Request,
        outcome: Annotated[str, Form(max_length=20)] = "",
        reason: Annotated[str, Form(max_length=500)] = "",
        csrf: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        session = holder_from_cookie(request)
        if session is None:
            return RedirectResponse("/inbox/login", status_code=303)
        holder, fingerprint = session
        if not csrf_ok(csrf, fingerprint):
            return _error(403, "Expired form", "This form has expired: reload the inbox.")
        async with request.app.state.sessions() as db:
            lead = await db.get(Lead, lead_id)
        if lead is None or (holder.rep is not None and lead.owner != holder.rep):
            return _error(404, "Not in your inbox", "This lead is not assigned to you.")
        if outcome not in (FeedbackOutcome.ACCEPT, FeedbackOutcome.REJECT):
            return _error(422, "Choose accept or reject", "Choose accept or reject.")
        if outcome == FeedbackOutcome.REJECT and not reason.strip():
            notice = f"Say why you reject {lead.first_name or 'the lead'}."
            return RedirectResponse("/inbox?" + urlencode({"notice": notice}), 303)
        try:
            result = await give_feedback(
                request.app.state.lifecycle,
                request.app.state.sessions,
                lead_id,
                SalesFeedback(
                    outcome=FeedbackOutcome(outcome),
                    reason=reason.strip() or None,
                    rep=holder.rep,
                ),
                request_id=None,
            )
        except ApiProblem as problem:
            return _error(problem.status, "Not applied", problem.message)
        name = " ".join(filter(None, (lead.first_name, lead.last_name))) or "the lead"
        verb = "Accepted" if outcome == FeedbackOutcome.ACCEPT else "Rejected"
        notice = f"{verb} {name}: now {result.stage}"
        return RedirectResponse("/inbox?" + urlencode({"notice": notice}), status_code=303)

    return router
