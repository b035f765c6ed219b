"""Previewing an email template for a real lead (by id) or a persona's sample lead, with
plain (untracked) links: what `nurture preview` and `GET /v1/templates/{name}/preview` show."""

from __future__ import annotations

from email.utils import parseaddr

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import Lead
from journeys.personas import PERSONAS
from journeys.rendering import lead_fields, render_email, template_context, template_exists
from starter.services.errors import LeadNotFound, Problem, Refusal
from starter.settings import Settings


class TemplatePreview(BaseModel):
    """A rendered email: subject, HTML and plain text."""

    template: str
    subject: str
    html: str
    text: str


class UnknownTemplate(Problem):
    def __init__(self, name: str) -> None:
        super().__init__(
            Refusal.NOT_FOUND, ("path", "name"), f"no email template {name!r}", "unknown_template"
        )


class UnknownPersona(Problem):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(PERSONAS))
        super().__init__(
            Refusal.INVALID,
            ("query", "persona"),
            f"unknown persona {name!r}; known: {known}",
            "unknown_persona",
        )


def _samples_for(
    name: str, settings: Settings, fields: dict[str, object], stage: str | None
) -> dict[str, object]:
    """What notification and consent templates get besides the lead (a rep, the score,
    the account, the confirmation link), as samples: a preview has none of them."""
    base = settings.public_base_url.rstrip("/")
    if name.startswith("consent/"):
        return {"confirm_url": f"{base}/c/preview"}
    if not name.startswith("notifications/"):
        return {}
    return {
        "rep": {"id": "sample", "name": "Sam Sample", "email": "sam@example.com"},
        "contact": {"email": fields.get("email") or "lead@example.com", "stage": stage},
        "score": {"total": 0, "fit": 0, "behaviour": 0, "contributions": []},
        "account": {"domain": "example.com", "name": "Example Ltd", "score": 0},
        "inbox_url": f"{base}/inbox",
    }


async def preview_template(
    settings: Settings,
    sessions: async_sessionmaker,
    name: str,
    *,
    lead_id: str | None = None,
    persona: str = "decision-maker",
) -> TemplatePreview:
    """Render `name` for the lead `lead_id`, or for `persona`'s sample lead."""
    if name.startswith(("layouts/", "notifications/_")) or not template_exists(name):
        raise UnknownTemplate(name)
    if lead_id is not None:
        async with sessions() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None or lead.erased_at is not None:
                raise LeadNotFound(lead_id, loc=("query", "lead_id"))
            fields = lead_fields(lead)
            stage: str | None = lead.lifecycle_stage
    else:
        if persona not in PERSONAS:
            raise UnknownPersona(persona)
        fields = {"id": "preview", "persona": persona, **PERSONAS[persona].sample_lead}
        stage = "lead"
    context = template_context(
        fields,
        base_url=settings.public_base_url,
        website_url=settings.website_url,  # named links as a real send resolves them
        sender_name=parseaddr(settings.mail_from)[0] or "Nurture",
        postal_address=settings.postal_address,
        stage=stage,
    )
    rendered = render_email(name, context | _samples_for(name, settings, fields, stage))
    return TemplatePreview(
        template=name, subject=rendered.subject, html=rendered.html, text=rendered.text
    )
