"""Email rendering: a sandboxed, autoescaping Jinja2 environment over `journeys/templates`.

An email template `NAME` is three files: `NAME.subject.txt`, `NAME.html` (escaped) and
`NAME.txt` (plain text). Undefined variables raise instead of rendering as blanks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from journeys.content_hub import recommend

TEMPLATE_DIR = Path(__file__).with_name("templates")

# The variables a template may use; `journeys.validation` checks templates against these.
LEAD_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "company",
    "title",
    "industry",
    "company_size",
    "country",
    "persona",
    "properties",
)
SENDER_FIELDS = ("name", "postal_address")
LINK_PATHS = {
    "getting_started": "/guides/getting-started",
    "book_demo": "/demo",
    "whitepaper": "/content/whitepaper",
    "case_study": "/content/case-study",
    "webinar": "/webinars/join",
    "webinar_recording": "/webinars/recording",
    "form": "/forms/resume",
    "pricing": "/pricing",
    "preferences": "/preferences",
    "stay_subscribed": "/preferences/stay",
}
# Named links to Nurture's own pages (on PUBLIC_BASE_URL; for a real send, the lead's signed
# preference page); every other name is a page of the company's website (WEBSITE_BASE_URL).
OWN_LINKS = frozenset({"preferences", "stay_subscribed"})
# Links every email has besides the content links: the one-click unsubscribe page and the
# open-tracking pixel (empty when not tracked, e.g. in a preview).
SERVICE_LINKS = ("unsubscribe", "pixel")
TEMPLATE_VARIABLES = {
    "lead": LEAD_FIELDS,
    "sender": SENDER_FIELDS,
    "links": (*LINK_PATHS, *SERVICE_LINKS),
    "content": ("id", "title", "summary", "url"),
}


def template_context(
    lead: dict[str, Any],
    *,
    base_url: str,
    sender_name: str,
    postal_address: str,
    links: dict[str, str] | None = None,
    stage: str | None = None,
    website_url: str | None = None,
) -> dict[str, Any]:
    """The variables every email template is rendered with. Named content links are pages
    of `website_url` (default: `base_url`), Nurture's own pages are on `base_url`; `links`
    (the lead's own pages for a real send) replaces those; `content` is the content hub's
    item for the lead's `stage` and persona."""
    base = base_url.rstrip("/")
    site = (website_url or base_url).rstrip("/")
    plain = {
        name: f"{base if name in OWN_LINKS else site}{path}" for name, path in LINK_PATHS.items()
    }
    plain |= {"unsubscribe": f"{base}/preferences", "pixel": ""}
    all_links = plain | (links or {})
    item = recommend(stage, lead.get("persona"))
    return {
        "content": {
            "id": item.id,
            "title": item.title,
            "summary": item.summary,
            "url": all_links[item.link],
        },
        "lead": {name: lead.get(name) for name in LEAD_FIELDS}
        | {"properties": dict(lead.get("properties") or {})},
        "sender": {"name": sender_name, "postal_address": postal_address},
        "links": all_links,
    }


class TemplateMissingError(LookupError):
    """An email template (or one of its three parts) does not exist."""


@dataclass(frozen=True)
class RenderedEmail:
    """The parts of one email, ready to send."""

    subject: str
    html: str
    text: str


@cache
def template_environment() -> SandboxedEnvironment:
    """The one Jinja2 environment for emails: sandboxed, autoescaped HTML, strict undefined."""
    return SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


# The three files of an email template: subject, HTML body, plain-text body.
TEMPLATE_PARTS = (".subject.txt", ".html", ".txt")


def template_exists(name: str) -> bool:
    """Whether all three parts of email template `name` exist."""
    return all((TEMPLATE_DIR / f"{name}{suffix}").is_file() for suffix in TEMPLATE_PARTS)


def render_email(name: str, context: dict[str, Any]) -> RenderedEmail:
    """Render email template `name` with `context`."""
    env = template_environment()
    try:
        subject, html, text = (
            env.get_template(f"{name}{suffix}").render(context) for suffix in TEMPLATE_PARTS
        )
    except TemplateNotFound as exc:
        raise TemplateMissingError(f"email template {name!r} is missing {exc.name}") from None
    # A subject is one header line: folding any line breaks in stops header injection.
    return RenderedEmail(subject=" ".join(subject.split()), html=html, text=text.strip() + "\n")


def lead_fields(lead: object) -> dict[str, Any]:
    """The lead's fields that templates may use (from a lead row or any object with them)."""
    return {name: getattr(lead, name, None) for name in LEAD_FIELDS}


def _subject_template(subject: str) -> Any:
    # Unescaped, like a template's own .subject.txt: a subject is text, not HTML.
    source = f"{{% autoescape false %}}{subject}{{% endautoescape %}}"
    return template_environment().from_string(source)


def render_subject(subject: str, context: dict[str, Any]) -> str:
    """A subject given apart from a template (a broadcast's A/B variant), rendered like a
    template's own subject (same sandbox, same variables, not escaped), on one line."""
    return " ".join(_subject_template(subject).render(context).split())


def subject_problem(subject: str) -> str | None:
    """Why `subject` can't be rendered for a lead — a syntax error, or a variable no
    template has (rendered for a sample lead) — or None."""
    sample: dict[str, Any] = {name: f"sample {name}" for name in LEAD_FIELDS}
    sample["properties"] = {}
    context = template_context(
        sample, base_url="https://example.com", sender_name="Sender", postal_address=""
    )
    try:
        _subject_template(subject).render(context)
    except TemplateSyntaxError as exc:
        return f"not a valid template: {exc.message}"
    except UndefinedError as exc:
        return f"uses a variable emails don't have: {exc.message}"
    return None
