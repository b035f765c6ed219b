"""The HTML pages people see (unsubscribe, confirmation, sign-up form, sales inbox): one
sandboxed, autoescaped Jinja2 environment over `starter/api/templates`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from starter.settings import Settings

TEMPLATES = Path(__file__).with_name("templates")


@cache
def pages() -> SandboxedEnvironment:
    """The page environment (built once per process)."""
    return SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True)
    )


def render_page(
    settings: Settings, template: str, status: int = 200, **context: object
) -> HTMLResponse:
    """A public page (autoescaped), never cached."""
    html = (
        pages()
        .get_template(template)
        .render({"action": "", "button": "", "sender": settings.postal_address, **context})
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
