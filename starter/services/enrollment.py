"""Enrolling a lead into a journey: upsert the lead, start its journey workflow once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import idna
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import Account, Enrollment, Lead, as_utc, new_id
from db.suppression_list import SuppressionList
from db.writes import insert_ignoring_conflict, insert_once
from journeys.accounts import company_domain
from journeys.consent import (
    ClaimSource,
    ConsentAction,
    ConsentStatus,
    SuppressionReason,
    normalise_address,
)
from journeys.dsl import JourneyDefinition
from starter.services.consent import ConsentIn, ConsentOutcome, apply_consent
from starter.services.errors import LeadConflict
from starter.services.input_model import InputModel
from starter.services.lead_workflow import LeadLifecycle
from workflows import search_attributes
from workflows.contracts import WORKFLOW_NAME, JourneyInput, LeadNudge, journey_workflow_id

log = logging.getLogger(__name__)

_Text100 = Field(default=None, max_length=100)


def deliverable_address(email: str) -> str:
    """The address as Nurture stores and sends it: lower case, the domain in its ASCII
    (IDNA) form. A local part (before the @) that isn't ASCII is refused: it needs
    SMTPUTF8 end to end, which most sending services and many receiving servers lack,
    and look-alike letters in it (a Cyrillic a, U+0430) are a spoofing device."""
    local, _, domain = email.strip().rpartition("@")
    if not local.isascii():
        raise ValueError(
            "the part before @ must be ASCII letters, digits and punctuation "
            "(internationalised mailbox names can't be delivered reliably)"
        )
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"the domain is not a valid internationalised name: {exc}") from None
    return f"{local}@{ascii_domain}".lower()


class LeadIn(InputModel):
    """A lead as a marketer (or a form) submits it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "example": {
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company": "Analytical Engines Ltd",
                "title": "VP Engineering",
                "company_size": 250,
                "industry": "software",
                "country": "GB",
            }
        },
    )

    email: EmailStr
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="The lead's id in your own system; enrollments are idempotent on it "
        "(and on the email).",
    )
    first_name: str | None = _Text100
    last_name: str | None = _Text100
    company: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=200)
    company_size: int | None = Field(default=None, ge=1, le=10_000_000)
    industry: str | None = _Text100
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    timezone: str | None = Field(default=None, max_length=64)
    persona: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        return deliverable_address(value)

    @field_validator("properties")
    @classmethod
    def _properties_are_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise ValueError("at most 50 properties")
        for key, item in value.items():
            if len(key) > 64 or (isinstance(item, str) and len(item) > 1000):
                raise ValueError(f"property {key[:64]!r} is too long (keys 64, values 1000 chars)")
        return value


class EnrollmentRequest(InputModel):
    """`POST /v1/enrollments`: put a lead into a journey."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "journey": "welcome",
                "lead": {"email": "ada@example.com", "first_name": "Ada", "company": "ACME"},
            }
        },
    )

    journey: str = Field(min_length=1, max_length=100)
    lead: LeadIn
    consent: ConsentIn | None = Field(
        default=None,
        description="How the lead opted in. Unless `confirmed`, a double opt-in email goes "
        "out and journeys hold their marketing email until the lead confirms.",
    )


class EnrollmentResult(BaseModel):
    """What an enrollment did; `status` says whether it started a journey."""

    lead_id: str
    workflow_id: str
    journey: str
    journey_version: str
    status: Literal["enrolled", "already_enrolled"]
    consent_status: ConsentStatus | None = None
    suppressed: SuppressionReason | None = Field(
        default=None,
        description="Set when the address is suppressed (the lead unsubscribed, bounced or "
        "complained): the journey runs but sends no marketing email, and a claim of "
        "consent is recorded only as a claim. Only the lead's own opt-in lifts it.",
    )


async def account_for(session: AsyncSession, email: str, company: str | None) -> str | None:
    """The id of the account an address belongs to (created on first sight), or None."""
    domain = company_domain(email)
    if domain is None:
        return None
    query = select(Account.id).where(Account.domain == domain)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        # A concurrent writer may create it first: the unique domain decides.
        await insert_ignoring_conflict(
            session, Account, {"id": new_id(), "domain": domain, "name": company}
        )
        found = (await session.execute(query)).scalar_one()
    return found


async def _find_lead(session: AsyncSession, lead_in: LeadIn) -> Lead | None:
    if lead_in.external_id is not None:
        by_external_id = (
            await session.execute(select(Lead).where(Lead.external_id == lead_in.external_id))
        ).scalar_one_or_none()
        if by_external_id is not None:
            return by_external_id
    found = (
        await session.execute(select(Lead).where(Lead.email == lead_in.email))
    ).scalar_one_or_none()
    if found is None and "xn--" in lead_in.email:
        # Older versions stored an internationalised domain in Unicode.
        local, _, domain = lead_in.email.rpartition("@")
        unicode_email = f"{local}@{idna.decode(domain)}"
        found = (
            await session.execute(select(Lead).where(Lead.email == unicode_email))
        ).scalar_one_or_none()
    return found


async def upsert_lead(session: AsyncSession, lead_in: LeadIn) -> tuple[Lead, bool]:
    """The lead with this external id or email, created or updated with the fields given
    (and grouped into its company's account), and whether its address is new to it (a new
    lead, or an external id given a new email); flushed, for the caller to commit.

    A known external id wins: the lead's email is updated to the one given. An email that
    already belongs to a lead with another external id is a conflict (`LeadConflict`).
    """
    fields = lead_in.model_dump(exclude={"properties"}, exclude_none=True)
    if "country" in fields:
        fields["country"] = fields["country"].upper()
    for _ in range(2):  # a concurrent insert of the same email makes the first try lose
        # Inside the loop: a rollback also takes back an account created in this transaction.
        fields["account_id"] = await account_for(session, lead_in.email, lead_in.company)
        lead = await _find_lead(session, lead_in)
        created = lead is None or (
            lead.email is None or normalise_address(lead.email) != normalise_address(lead_in.email)
        )
        if lead is None:
            lead = Lead(properties=dict(lead_in.properties), **fields)
            session.add(lead)
        else:
            if (
                lead_in.external_id is not None
                and lead.external_id is not None
                and lead.external_id != lead_in.external_id
            ):
                raise LeadConflict("email", "this email belongs to a lead with another external_id")
            for name, value in fields.items():
                setattr(lead, name, value)
            if lead_in.properties:
                lead.properties = {**lead.properties, **lead_in.properties}
        try:
            await session.flush()
            return lead, created
        except IntegrityError:
            await session.rollback()
    raise LeadConflict("email", "this email belongs to a lead with another external_id")


async def _recent_entry(sessions: async_sessionmaker, workflow_id: str, within: timedelta) -> bool:
    async with sessions() as session:
        enrollment = (
            await session.execute(select(Enrollment).where(Enrollment.workflow_id == workflow_id))
        ).scalar_one_or_none()
    if enrollment is None:
        return False
    last = as_utc(enrollment.last_enrolled_at or enrollment.enrolled_at)
    return datetime.now(UTC) - last < within


async def _record_entry(
    sessions: async_sessionmaker,
    lead_id: str,
    definition: JourneyDefinition,
    workflow_id: str,
    run_id: str | None,
) -> None:
    """One enrollment row per (lead, journey); a re-entry counts up on the same row."""
    async with sessions() as session:
        if await insert_once(
            session,
            Enrollment(
                lead_id=lead_id,
                journey=definition.name,
                journey_version=definition.version,
                workflow_id=workflow_id,
                run_id=run_id,
                last_enrolled_at=datetime.now(UTC),
            ),
        ):
            return
        enrollment = (
            await session.execute(select(Enrollment).where(Enrollment.workflow_id == workflow_id))
        ).scalar_one()
        if run_id is not None and enrollment.run_id != run_id:
            enrollment.run_id = run_id
            enrollment.entries += 1
            enrollment.completed_at = None
            enrollment.journey_version = definition.version
            enrollment.last_enrolled_at = datetime.now(UTC)
            await session.commit()


async def start_journey(
    client: Client,
    sessions: async_sessionmaker,
    *,
    task_queue: str,
    lead_id: str,
    definition: JourneyDefinition,
    continue_as_new_after: int | None = None,
    lifecycle: LeadLifecycle | Literal["default"] | None = "default",
    effect_timeout_seconds: int | None = None,
) -> EnrollmentResult:
    """Start the lead's journey workflow as its re-entry policy allows; record the enrollment.

    The workflow id is derived from (journey, lead), so concurrent or repeated enrollments
    can't start two runs at once. `once` rejects any second run; `always` starts a new run
    when the previous one has ended; `periodic` also waits out the period since the last.
    A new enrollment also makes sure the lead's lifecycle workflow runs (`lifecycle`; by
    default on the same task queue; None when the lifecycle itself enrolls the lead).
    """
    if lifecycle == "default":
        lifecycle = LeadLifecycle(client, task_queue)
    workflow_id = journey_workflow_id(definition.name, lead_id)
    policy = definition.reentry
    if policy.policy == "periodic" and policy.every is not None:
        if await _recent_entry(sessions, workflow_id, policy.every):
            return _result(lead_id, workflow_id, definition, "already_enrolled")
    status: Literal["enrolled", "already_enrolled"] = "enrolled"
    try:
        new_run_id = await _start_workflow(
            client,
            task_queue=task_queue,
            lead_id=lead_id,
            workflow_id=workflow_id,
            definition=definition,
            continue_as_new_after=continue_as_new_after,
            effect_timeout_seconds=effect_timeout_seconds,
        )
    except WorkflowAlreadyStartedError as exc:
        status = "already_enrolled"
        # An earlier attempt may have started the run but died before recording it.
        await _record_entry(sessions, lead_id, definition, workflow_id, None)
        log.debug("already running: %s (%s)", workflow_id, exc.run_id)
    else:
        await _record_entry(sessions, lead_id, definition, workflow_id, new_run_id)
        log.info("enrolled lead %s in %s (%s)", lead_id, definition.name, definition.version)
    if lifecycle is not None:  # also on a repeat: an earlier attempt may have died before it
        await lifecycle.nudge(lead_id, LeadNudge(cause=f"enrolled in {definition.name}"))
    return _result(lead_id, workflow_id, definition, status)


async def _start_workflow(
    client: Client,
    *,
    task_queue: str,
    lead_id: str,
    workflow_id: str,
    definition: JourneyDefinition,
    continue_as_new_after: int | None,
    effect_timeout_seconds: int | None,
) -> str | None:
    """Start a run of the journey workflow, as its re-entry policy allows (a refusal is
    `WorkflowAlreadyStartedError`); returns the new run's id."""
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        JourneyInput(
            lead_id=lead_id,
            definition=definition,
            continue_as_new_after=continue_as_new_after,
            effect_timeout_seconds=effect_timeout_seconds,
        ),
        id=workflow_id,
        task_queue=task_queue,
        id_reuse_policy=(
            WorkflowIDReusePolicy.REJECT_DUPLICATE
            if definition.reentry.policy == "once"
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE
        ),
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.JOURNEY, definition.name),
                SearchAttributePair(search_attributes.JOURNEY_VERSION, definition.version),
            ]
        ),
    )
    return handle.first_execution_run_id


def _result(
    lead_id: str,
    workflow_id: str,
    definition: JourneyDefinition,
    status: Literal["enrolled", "already_enrolled"],
) -> EnrollmentResult:
    return EnrollmentResult(
        lead_id=lead_id,
        workflow_id=workflow_id,
        journey=definition.name,
        journey_version=definition.version,
        status=status,
    )


async def record_lead(
    sessions: async_sessionmaker,
    lead_in: LeadIn,
    consent: ConsentIn | None,
    consent_text_version: str,
    *,
    suppressions: SuppressionList,
    source: ClaimSource = ClaimSource.INTEGRATION,
    confirmed_action: ConsentAction = ConsentAction.IMPORTED,
) -> tuple[str, ConsentStatus, ConsentOutcome]:
    """Create or update the lead and record its consent claim, in one transaction (the
    lead, its account and its consent evidence together): its id, consent status, and
    what recording the claim did."""
    async with sessions() as session:
        lead, new_address = await upsert_lead(session, lead_in)
        outcome = await apply_consent(
            session,
            lead,
            consent,
            consent_text_version,
            suppressions=suppressions,
            new_address=new_address,
            source=source,
            confirmed_action=confirmed_action,
        )
        await session.commit()
        return lead.id, ConsentStatus(lead.consent_status), outcome


async def enroll(
    client: Client,
    sessions: async_sessionmaker,
    *,
    task_queue: str,
    lead_in: LeadIn,
    definition: JourneyDefinition,
    suppressions: SuppressionList,
    lifecycle: LeadLifecycle | Literal["default"] | None = "default",
    consent: ConsentIn | None = None,
    consent_text_version: str = "unversioned",
    source: ClaimSource = ClaimSource.INTEGRATION,
    confirmed_action: ConsentAction = ConsentAction.IMPORTED,
) -> EnrollmentResult:
    """Create or update the lead, record its consent, then start its journey (once). A lead
    without confirmed consent gets a double opt-in from its lead workflow; a suppressed
    address is enrolled but mailed nothing (`suppressed` says why)."""
    lead_id, consent_status, outcome = await record_lead(
        sessions,
        lead_in,
        consent,
        consent_text_version,
        suppressions=suppressions,
        source=source,
        confirmed_action=confirmed_action,
    )
    result = await start_journey(
        client,
        sessions,
        task_queue=task_queue,
        lead_id=lead_id,
        definition=definition,
        lifecycle=lifecycle,
    )
    if outcome.start_double_opt_in:
        handle = LeadLifecycle(client, task_queue) if lifecycle in ("default", None) else lifecycle
        assert isinstance(handle, LeadLifecycle)
        await handle.nudge(lead_id, LeadNudge(cause="opt-in requested", consent_requested=True))
    return result.model_copy(
        update={"consent_status": consent_status, "suppressed": outcome.suppressed}
    )
