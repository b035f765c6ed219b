"""Routes that put leads into journeys: bulk jobs (JSON and CSV) and form submissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, status
from pydantic import ValidationError

from db.suppression_list import SuppressionList
from journeys.dsl import JourneyDefinition
from journeys.forms import FORMS
from journeys.registry import UnknownJourneyError, all_journeys, get_journey
from starter.api.roles import MarketingKey, caller_name
from starter.services.bulk_rows import MAX_ROWS, TooManyRows, parse_csv_rows, parse_json_rows
from starter.services.consent import ConsentIn
from starter.services.enrollment_jobs import (
    EnrollmentJobRequest,
    EnrollmentJobView,
    create_job,
    job_id_for,
    read_job,
)
from starter.services.errors import ApiProblem, InvalidParameter, UnknownJourney
from starter.services.forms import FormSubmission, FormSubmissionResult, form_named, submit_form
from starter.settings import Settings

JobId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The job's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request safely: the same key returns the same job",
    ),
]
MAX_CSV_BYTES = 20 * 1024 * 1024


class PayloadTooLarge(ApiProblem):
    def __init__(self, message: str) -> None:
        super().__init__(413, ("body",), message, "payload_too_large")


def _journey(name: str, loc: tuple[str, ...]) -> JourneyDefinition:
    try:
        return get_journey(name)
    except UnknownJourneyError:
        raise UnknownJourney(name, sorted(all_journeys()), loc) from None


def enrollment_router(settings: Settings) -> APIRouter:
    """`/v1/enrollment-jobs…` and `/v1/forms…`."""
    router = APIRouter(tags=["enrollments"])

    @router.post(
        "/v1/enrollment-jobs",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EnrollmentJobView,
        responses={422: {"description": "Unknown journey, or not a list of at most 10,000"}},
    )
    async def create_enrollment_job(
        body: EnrollmentJobRequest,
        request: Request,
        holder: MarketingKey,
        idempotency_key: IdempotencyKey = None,
    ) -> EnrollmentJobView:
        """Enroll up to 10,000 leads (a JSON array) in the background; poll the job.

        Each lead is validated on its own: bad ones are reported by `line` (array index + 1)
        with the field and reason, and the others are enrolled. Enrolling is idempotent on
        `external_id` and email, so a repeated upload enrolls nobody twice.
        """
        definition = _journey(body.journey, ("body", "journey"))
        try:
            parsed = parse_json_rows(body.leads)
        except TooManyRows as exc:
            raise InvalidParameter(("body", "leads"), str(exc)) from None
        return await create_job(
            request.app.state.temporal,
            request.app.state.sessions,
            task_queue=settings.task_queue,
            job_id=job_id_for(idempotency_key, caller_name(holder)),
            definition=definition,
            parsed=parsed,
            source="json",
            consent=body.consent,
            created_by=caller_name(holder),
        )

    @router.post(
        "/v1/enrollment-jobs/csv",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EnrollmentJobView,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "email,first_name,company,title,external_id\n"
                        "ada@example.com,Ada,Analytical Engines,CTO,crm-1\n",
                    }
                },
            }
        },
        responses={
            413: {"description": "Larger than 20 MB"},
            422: {"description": "Unknown journey, no email column, or not UTF-8"},
        },
    )
    async def create_csv_enrollment_job(
        request: Request,
        holder: MarketingKey,
        journey: Annotated[str, Query(min_length=1, max_length=100)],
        consent_source: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="Where these leads opted in"),
        ] = None,
        consent_confirmed: Annotated[
            bool, Query(description="They confirmed elsewhere (evidence kept): no double opt-in")
        ] = False,
        idempotency_key: IdempotencyKey = None,
    ) -> EnrollmentJobView:
        """Enroll the leads of a CSV file (header row with at least `email`; other columns:
        `external_id`, `first_name`, `last_name`, `company`, `title`, `company_size`,
        `industry`, `country`, `timezone`, `persona`; any other column becomes a property).

        Up to 10,000 rows; bad rows are reported by their line in the file (the header is
        line 1), the others enrolled in the background.
        """
        definition = _journey(journey, ("query", "journey"))
        if consent_confirmed and consent_source is None:
            raise InvalidParameter(
                ("query", "consent_source"), "say where the leads confirmed (consent_source)"
            )
        body = await request.body()
        if len(body) > MAX_CSV_BYTES:
            raise PayloadTooLarge(f"at most {MAX_CSV_BYTES // (1024 * 1024)} MB per upload")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidParameter(("body",), "the CSV must be UTF-8") from None
        try:
            parsed = parse_csv_rows(text)
        except TooManyRows:
            raise InvalidParameter(("body",), f"at most {MAX_ROWS} rows per upload") from None
        except Exception as exc:  # csv.Error and a missing email column: the file's fault
            raise InvalidParameter(("body",), f"not a usable CSV file: {exc}") from None
        consent = None
        if consent_source is not None:
            try:
                consent = ConsentIn(source=consent_source, confirmed=consent_confirmed)
            except ValidationError as exc:  # pragma: no cover - Query() already bounds it
                raise InvalidParameter(("query", "consent_source"), str(exc)) from None
        return await create_job(
            request.app.state.temporal,
            request.app.state.sessions,
            task_queue=settings.task_queue,
            job_id=job_id_for(idempotency_key, caller_name(holder)),
            definition=definition,
            parsed=parsed,
            source="csv",
            consent=consent,
            created_by=caller_name(holder),
        )

    @router.get(
        "/v1/enrollment-jobs/{job_id}",
        response_model=EnrollmentJobView,
        responses={404: {"description": "No such job"}},
    )
    async def get_enrollment_job(
        job_id: JobId, request: Request, _: MarketingKey
    ) -> EnrollmentJobView:
        """A bulk enrollment's progress and its per-row errors."""
        return await read_job(request.app.state.sessions, job_id)

    @router.get("/v1/forms", tags=["forms"])
    async def list_forms(_: MarketingKey) -> list[dict[str, object]]:
        """The forms defined in journeys/forms.py and the journey each enrolls into."""
        return [form.model_dump(mode="json") for form in FORMS.values()]

    @router.post(
        "/v1/forms/{form}/submissions",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=FormSubmissionResult,
        tags=["forms"],
        responses={
            404: {"description": "No such form"},
            422: {"description": "Invalid lead, or no marketing consent"},
        },
    )
    async def post_form_submission(
        form: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")],
        body: FormSubmission,
        request: Request,
        _: MarketingKey,
    ) -> FormSubmissionResult:
        """A website form was submitted (sent by the site's backend): the lead is created or
        updated, its consent recorded with IP, user agent and text version, the submission
        counted (a lead magnet as a download) and the lead enrolled into the form's journey
        (`whitepaper-download` → `whitepaper-nurture`). Double opt-in unless the form says
        otherwise."""
        definition = form_named(form)
        return await submit_form(
            request.app.state.temporal,
            request.app.state.sessions,
            request.app.state.lifecycle,
            task_queue=settings.task_queue,
            form=definition,
            submission=body,
            consent_text_version=settings.consent_text_version,
            suppressions=SuppressionList(settings.require_secret_key()),
            public_base_url=settings.public_base_url,
        )

    return router
