"""`GET /v1/templates/{name}/preview`: an email template as a lead would receive it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from starter.api.deps import Config, MarketingKey, Sessions
from starter.services.preview import TemplatePreview, preview_template

router = APIRouter(tags=["journeys"])


@router.get(
    "/v1/templates/{name:path}/preview",
    response_model=TemplatePreview,
    responses={404: {"description": "No such template or lead"}},
)
async def get_template_preview(
    name: Annotated[str, Path(max_length=200, pattern=r"^[a-z0-9_/]+$")],
    _: MarketingKey,
    settings: Config,
    sessions: Sessions,
    lead_id: Annotated[str | None, Query(pattern=r"^[0-9a-f-]{36}$")] = None,
    persona: Annotated[str, Query(max_length=64)] = "decision-maker",
) -> TemplatePreview:
    """An email template rendered for a lead (`lead_id`) or a persona's sample lead."""
    return await preview_template(settings, sessions, name, lead_id=lead_id, persona=persona)
