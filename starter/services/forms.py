"""Form intake: a website form's submission creates or updates the lead, records its
consent with evidence, counts as engagement and enrolls the lead into the form's journey."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import TriggerFiring
from db.suppression_list import SuppressionList
from db.writes import insert_once
from journeys.consent import ClaimSource, ConsentAction, ConsentStatus, SuppressionReason
from journeys.forms import FORMS, FormDefinition
from journeys.registry import get_journey
from starter.services.consent import ConsentIn
from starter.services.enrollment import EnrollmentResult, LeadIn, enroll
from starter.services.errors import Problem, Refusal
from starter.services.events import EventIn, record_event
from starter.services.input_model import InputModel
from starter.services.lead_workflow import LeadLifecycle


class FormConsent(InputModel):
    """The consent checkbox as the visitor saw and ticked it."""

    model_config = ConfigDict(extra="forbid")

    marketing: bool = Field(description="The visitor agreed to receive marketing email.")
    text_version: str | None = Field(default=None, max_length=64)


class FormSubmission(InputModel):
    """`POST /v1/forms/{form}/submissions`, sent by the website's backend."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "submission_id": "wp-2026-11-22-000123",
                "lead": {
                    "email": "ada@example.com",
                    "first_name": "Ada",
                    "company": "Analytical Engines Ltd",
                    "title": "VP Engineering",
                },
                "consent": {"marketing": True, "text_version": "2026-11"},
                "ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0",
                "page_url": "https://example.com/whitepapers/state-of-b2b",
            }
        },
    )

    submission_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="The website's id for this submission: a repeat counts once.",
    )
    lead: LeadIn
    consent: FormConsent
    ip: str | None = Field(default=None, max_length=64, description="The visitor's IP")
    user_agent: str | None = Field(default=None, max_length=300)
    page_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://\S+$")

    @field_validator("ip")
    @classmethod
    def _is_an_ip(cls, value: str | None) -> str | None:
        # Validated as ConsentIn does; repeated here so the error names this field.
        return ConsentIn.model_validate({"source": "form", "ip": value}).ip


class FormSubmissionResult(BaseModel):
    """What the submission did."""

    form: str
    lead_id: str
    journey: str
    status: Literal["enrolled", "already_enrolled"]
    consent_status: ConsentStatus | None
    suppressed: SuppressionReason | None = Field(
        default=None,
        description="Set when the address is suppressed: a relayed submission mails it "
        "nothing. The person can subscribe again at `resubscribe_url`, Nurture's hosted "
        "form, whose confirmation email only they can click.",
    )
    resubscribe_url: str | None = None
    event_id: str


class UnknownForm(Problem):
    def __init__(self, name: str) -> None:
        super().__init__(
            Refusal.NOT_FOUND,
            ("path", "form"),
            f"unknown form {name!r}; known: {', '.join(sorted(FORMS))}",
            "unknown_form",
        )


class ConsentRequired(Problem):
    def __init__(self) -> None:
        super().__init__(
            Refusal.INVALID,
            ("body", "consent", "marketing"),
            "this form enrolls into a nurture journey: marketing consent is required",
            "consent_required",
        )


def form_named(name: str) -> FormDefinition:
    """The form called `name`, or a 404 naming the known forms."""
    try:
        return FORMS[name]
    except KeyError:
        raise UnknownForm(name) from None


async def _record_firing(
    sessions: async_sessionmaker,
    form: FormDefinition,
    submission: FormSubmission,
    enrollment: EnrollmentResult,
) -> None:
    """The journey's `on_form` trigger fired for this submission (once per submission id):
    the lead view then says which trigger started the journey."""
    async with sessions() as session:
        await insert_once(
            session,
            TriggerFiring(
                journey=form.journey,
                lead_id=enrollment.lead_id,
                cause_key=f"form:{form.name}:{submission.submission_id or 'no-id'}"[:300],
                trigger=f"form:{form.name}",
                workflow_id=enrollment.workflow_id,
                outcome=enrollment.status,
            ),
        )


async def submit_form(
    client: Client,
    sessions: async_sessionmaker,
    lifecycle: LeadLifecycle,
    *,
    task_queue: str,
    form: FormDefinition,
    submission: FormSubmission,
    consent_text_version: str,
    suppressions: SuppressionList,
    public_base_url: str,
    source: ClaimSource = ClaimSource.INTEGRATION,
) -> FormSubmissionResult:
    """Create or update the lead, record consent (double opt-in unless the form says
    otherwise), enroll it into the form's journey and record the submission as an event.

    `source` says whose act this is: a submission relayed by a website's backend is an
    integration's claim (a suppressed address stays suppressed); one made on Nurture's
    hosted form is the person's own (a suppressed address gets a confirmation email, whose
    click re-subscribes it)."""
    if not submission.consent.marketing:
        raise ConsentRequired()
    consent = _consent_given(form, submission)
    enrollment = await enroll(
        client,
        sessions,
        task_queue=task_queue,
        lead_in=submission.lead,
        definition=get_journey(form.journey),
        suppressions=suppressions,
        lifecycle=lifecycle,
        consent=consent,
        consent_text_version=consent_text_version,
        source=source,
        confirmed_action=ConsentAction.OPTED_IN,
    )
    event_id = await _record_submission(
        client, sessions, lifecycle, form, submission, enrollment.lead_id
    )
    await _record_firing(sessions, form, submission, enrollment)
    return FormSubmissionResult(
        form=form.name,
        lead_id=enrollment.lead_id,
        journey=form.journey,
        status=enrollment.status,
        consent_status=enrollment.consent_status,
        suppressed=enrollment.suppressed,
        resubscribe_url=_resubscribe_url(public_base_url, form, enrollment.suppressed, source),
        event_id=event_id,
    )


def _resubscribe_url(
    public_base_url: str,
    form: FormDefinition,
    suppressed: SuppressionReason | None,
    source: ClaimSource,
) -> str | None:
    """For a suppressed address an integration relayed: Nurture's hosted form, where the
    person can subscribe again themselves."""
    if suppressed is not None and source is ClaimSource.INTEGRATION:
        return f"{public_base_url.rstrip('/')}/f/{form.name}"
    return None


def _consent_given(form: FormDefinition, submission: FormSubmission) -> ConsentIn:
    """The submission's consent with its evidence; confirmed unless the form asks for a
    double opt-in."""
    return ConsentIn(
        source=f"form:{form.name}",
        confirmed=not form.double_opt_in,
        text_version=submission.consent.text_version,
        ip=submission.ip,
        user_agent=submission.user_agent,
    )


async def _record_submission(
    client: Client,
    sessions: async_sessionmaker,
    lifecycle: LeadLifecycle,
    form: FormDefinition,
    submission: FormSubmission,
    lead_id: str,
) -> str:
    """Record the submission as the form's engagement event (once per submission id, or
    per lead without one); returns the event's id."""
    event_id = f"form-{form.name}-{submission.submission_id or lead_id}"
    properties: dict[str, str | int | float | bool | None] = {"form": form.name}
    if form.lead_magnet:
        properties["content"] = form.lead_magnet
    if submission.page_url:
        properties["page_url"] = submission.page_url
    await record_event(
        client,
        sessions,
        EventIn.model_validate(
            {"lead_id": lead_id, "type": form.event, "event_id": event_id, "properties": properties}
        ),
        lifecycle,
    )
    return event_id
