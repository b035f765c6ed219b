"""Email rendering: a sandboxed, autoescaping Jinja2 environment over `journeys/templates`.

An email template `NAME` is three files: `NAME.subject.txt`, `NAME.html` (escaped) and
`NAME.txt` (plain text). Undefined variables raise instead of rendering as blanks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).with_name("templates")


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


def template_exists(name: str) -> bool:
    """Whether all three parts of email template `name` exist."""
    return all((TEMPLATE_DIR / f"{name}{suffix}").is_file() for suffix in _PARTS)


_PARTS = (".subject.txt", ".html", ".txt")


def render_email(name: str, context: dict[str, Any]) -> RenderedEmail:
    """Render email template `name` with `context`."""
    env = template_environment()
    try:
        subject, html, text = (
            env.get_template(f"{name}{suffix}").render(context) for suffix in _PARTS
        )
    except TemplateNotFound as exc:
        raise TemplateMissingError(f"email template {name!r} is missing {exc.name}") from None
    # A subject is one header line: folding any line breaks in stops header injection.
    return RenderedEmail(subject=" ".join(subject.split()), html=html, text=text.strip() + "\n")
