"""Routes that put leads into journeys: one enrollment (`POST /v1/enrollments`) and bulk
jobs (`/v1/enrollment-jobs`: 10,000 rows as JSON, 100,000 as CSV)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, status
from pydantic import ValidationError

from starter.api.auth import caller_name
from starter.api.deps import Config, Lifecycle, MarketingKey, Sessions, Suppressions, Temporal
from starter.api.request_guard import body_limit
from starter.services.bulk_rows import (
    MAX_CSV_ROWS,
    ParsedRows,
    TooManyRows,
    parse_csv_rows,
    parse_json_rows,
)
from starter.services.catalog import journey_named
from starter.services.consent import ConsentIn
from starter.services.enrollment import EnrollmentRequest, EnrollmentResult, enroll
from starter.services.enrollment_jobs import (
    EnrollmentJobRequest,
    EnrollmentJobView,
    create_job,
    job_id_for,
    read_job,
)
from starter.services.errors import InvalidParameter, Problem, Refusal

JobId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The job's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request safely: the same key returns the same job",
    ),
]
MAX_CSV_BYTES = body_limit("/v1/enrollment-jobs/csv")  # the guard's limit, one source


class PayloadTooLarge(Problem):
    def __init__(self, message: str) -> None:
        super().__init__(Refusal.TOO_LARGE, ("body",), message, "payload_too_large")


router = APIRouter(tags=["enrollments"])


@router.post(
    "/v1/enrollments",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EnrollmentResult,
    responses={
        409: {"description": "The email belongs to a lead with another external_id"},
        422: {"description": "Invalid lead or unknown journey"},
    },
)
async def create_enrollment(
    body: EnrollmentRequest,
    _: MarketingKey,
    settings: Config,
    temporal: Temporal,
    sessions: Sessions,
    lifecycle: Lifecycle,
    suppressions: Suppressions,
) -> EnrollmentResult:
    """Enroll a lead (created or updated by email) into a journey.

    Enrolling the same lead into the same journey again starts nothing:
    the answer then says `"status": "already_enrolled"`.
    """
    return await enroll(
        temporal,
        sessions,
        task_queue=settings.task_queue,
        lead_in=body.lead,
        definition=journey_named(body.journey, ("body", "journey")),
        suppressions=suppressions,
        lifecycle=lifecycle,
        consent=body.consent,
        consent_text_version=settings.consent_text_version,
    )


@router.post(
    "/v1/enrollment-jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EnrollmentJobView,
    responses={422: {"description": "Unknown journey, or not a list of at most 10,000"}},
)
async def create_enrollment_job(
    body: EnrollmentJobRequest,
    holder: MarketingKey,
    settings: Config,
    temporal: Temporal,
    sessions: Sessions,
    idempotency_key: IdempotencyKey = None,
) -> EnrollmentJobView:
    """Enroll up to 10,000 leads (a JSON array) in the background; poll the job.

    Each lead is validated on its own: bad ones are reported by `line` (array index + 1)
    with the field and reason, and the others are enrolled. Enrolling is idempotent on
    `external_id` and email, so a repeated upload enrolls nobody twice.
    """
    definition = journey_named(body.journey, ("body", "journey"))
    try:
        parsed = parse_json_rows(body.leads)
    except TooManyRows as exc:
        raise InvalidParameter(("body", "leads"), str(exc)) from None
    return await create_job(
        temporal,
        sessions,
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
        413: {"description": "Larger than 32 MiB"},
        422: {"description": "Unknown journey, no email column, or not UTF-8"},
    },
)
async def create_csv_enrollment_job(
    request: Request,
    holder: MarketingKey,
    settings: Config,
    temporal: Temporal,
    sessions: Sessions,
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

    Up to 100,000 rows; bad rows are reported by their line in the file (the header is
    line 1), the others enrolled in the background.
    """
    definition = journey_named(journey, ("query", "journey"))
    if consent_confirmed and consent_source is None:
        raise InvalidParameter(
            ("query", "consent_source"), "say where the leads confirmed (consent_source)"
        )
    parsed = _csv_rows(await request.body())
    consent = None
    if consent_source is not None:
        try:
            consent = ConsentIn(source=consent_source, confirmed=consent_confirmed)
        except ValidationError as exc:  # pragma: no cover - Query() already bounds it
            raise InvalidParameter(("query", "consent_source"), str(exc)) from None
    return await create_job(
        temporal,
        sessions,
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
    job_id: JobId, _: MarketingKey, sessions: Sessions
) -> EnrollmentJobView:
    """A bulk enrollment's progress and its per-row errors."""
    return await read_job(sessions, job_id)


def _csv_rows(body: bytes) -> ParsedRows:
    """The rows of an uploaded CSV file, or the reason it can't be used (413, 422)."""
    if len(body) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"at most {MAX_CSV_BYTES // (1024 * 1024)} MiB per upload")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidParameter(("body",), "the CSV must be UTF-8") from None
    try:
        return parse_csv_rows(text)
    except TooManyRows:
        raise InvalidParameter(("body",), f"at most {MAX_CSV_ROWS} rows per upload") from None
    except Exception as exc:  # csv.Error and a missing email column: the file's fault
        raise InvalidParameter(("body",), f"not a usable CSV file: {exc}") from None
