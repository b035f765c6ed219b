"""`/v1/forms…`: the forms defined as code, and a submission relayed by a website's backend
(the hosted form people fill in themselves is `signup`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from journeys.forms import FORMS
from starter.api.deps import Config, Lifecycle, MarketingKey, Sessions, Suppressions, Temporal
from starter.services.forms import FormSubmission, FormSubmissionResult, form_named, submit_form

router = APIRouter(tags=["enrollments", "forms"])


@router.get("/v1/forms")
async def list_forms(_: MarketingKey) -> list[dict[str, object]]:
    """The forms defined in journeys/forms.py and the journey each enrolls into."""
    return [form.model_dump(mode="json") for form in FORMS.values()]


@router.post(
    "/v1/forms/{form}/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FormSubmissionResult,
    responses={
        404: {"description": "No such form"},
        422: {"description": "Invalid lead, or no marketing consent"},
    },
)
async def post_form_submission(
    form: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")],
    body: FormSubmission,
    _: MarketingKey,
    settings: Config,
    temporal: Temporal,
    sessions: Sessions,
    lifecycle: Lifecycle,
    suppressions: Suppressions,
) -> FormSubmissionResult:
    """A website form was submitted (sent by the site's backend): the lead is created or
    updated, its consent recorded with IP, user agent and text version, the submission
    counted (a lead magnet as a download) and the lead enrolled into the form's journey
    (`whitepaper-download` → `whitepaper-nurture`). Double opt-in unless the form says
    otherwise."""
    definition = form_named(form)
    return await submit_form(
        temporal,
        sessions,
        lifecycle,
        task_queue=settings.task_queue,
        form=definition,
        submission=body,
        consent_text_version=settings.consent_text_version,
        suppressions=suppressions,
        public_base_url=settings.public_base_url,
    )
