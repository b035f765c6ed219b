"""The HTTP API: `create_app(settings)` builds it; `nurture api` serves it with uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.suppression_list import SuppressionList
from journeys.registry import UnknownJourneyError, all_journeys, get_journey
from journeys.scoring import ScoreExplanation
from starter.api.rate_limits import AttemptLimiter
from starter.api.request_guard import FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW, RequestGuard
from starter.api.roles import AdminKey, MarketingKey, MarketingOrSalesKey, SalesKey, caller_name
from starter.api.routes.email_links import public_router
from starter.api.routes.enrollments import enrollment_router
from starter.api.routes.inbox import inbox_router
from starter.api.routes.reports import report_router
from starter.api.routes.signup import signup_router
from starter.api.security_headers import SecurityHeaders
from starter.dev.provisioning.temporal import temporal_address
from starter.services.crm_signatures import SIGNATURE_HEADER, SignatureInvalid, verify
from starter.services.enrollment import EnrollmentRequest, EnrollmentResult, enroll
from starter.services.erasure import ErasureResult, erase_lead
from starter.services.errors import (
    ApiProblem,
    SignatureRejected,
    TemporalUnavailable,
    UnknownJourney,
    safe_errors,
)
from starter.services.events import EventIn, EventResult, record_event, refuse_future
from starter.services.lead_access import ensure_may_see
from starter.services.lead_workflow import LeadLifecycle
from starter.services.leads import LeadView, read_lead, read_score
from starter.services.preview import TemplatePreview, preview_template
from starter.services.sales import (
    CrmStatusAccepted,
    CrmStatusChange,
    SalesFeedbackIn,
    crm_status_changed,
    give_feedback,
    webhook_receipt,
)
from starter.settings import Settings, SettingsError
from starter.temporal_client import connect
from workflows.contracts import FeedbackResult

log = logging.getLogger(__name__)

LeadId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The lead's id (a UUID)")]


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; start-up migrates the database and connects to Temporal."""
    api_keys = settings.require_api_keys()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await asyncio.to_thread(upgrade_to_head, settings.effective_database_url)
            engine = create_engine_for(
                settings.effective_database_url, pool_size=settings.database_pool_size
            )
            stack.push_async_callback(engine.dispose)
            address = await stack.enter_async_context(
                temporal_address(
                    settings.temporal_address,
                    namespace=settings.temporal_namespace,
                    data_dir=settings.data_dir,
                )
            )
            app.state.temporal = await connect(address, settings.temporal_namespace)
            app.state.lifecycle = LeadLifecycle(
                app.state.temporal, settings.task_queue, settings.effect_timeout_seconds
            )
            app.state.sessions = session_factory(engine)
            yield

    app = FastAPI(
        title="Nurture",
        version="0.1.0",
        summary="Buyer journeys as durable workflows: enroll leads, report engagement, read leads.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = api_keys
    # Unknown keys and inbox sign-ins per client address: one count for both.
    failed_auth = AttemptLimiter(limit=FAILED_AUTH_LIMIT, window=FAILED_AUTH_WINDOW)
    # Added last = runs first: headers on every answer, the guard's refusals included.
    app.add_middleware(RequestGuard, api_keys=api_keys, failures=failed_auth)
    app.add_middleware(SecurityHeaders, https=settings.public_base_url.startswith("https://"))

    @app.exception_handler(ApiProblem)
    async def _problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)

    @app.exception_handler(RPCError)
    async def _temporal_error(_: Request, exc: RPCError) -> JSONResponse:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            problem = TemporalUnavailable()
            return JSONResponse(problem.body(), status_code=problem.status)
        log.exception("Temporal refused a request")
        return JSONResponse(
            {
                "detail": [
                    {
                        "loc": [],
                        "msg": "the workflow engine refused the request",
                        "type": "temporal_error",
                    }
                ]
            },
            status_code=status.HTTP_502_BAD_GATEWAY,
        )

    def temporal(request: Request) -> Client:
        return request.app.state.temporal

    def lifecycle(request: Request) -> LeadLifecycle:
        return request.app.state.lifecycle

    @app.post(
        "/v1/enrollments",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EnrollmentResult,
        tags=["enrollments"],
        responses={
            409: {"description": "The email belongs to a lead with another external_id"},
            422: {"description": "Invalid lead or unknown journey"},
        },
    )
    async def create_enrollment(
        body: EnrollmentRequest, request: Request, _: MarketingKey
    ) -> EnrollmentResult:
        """Enroll a lead (created or updated by email) into a journey.

        Enrolling the same lead into the same journey again starts nothing:
        the answer then says `"status": "already_enrolled"`.
        """
        try:
            definition = get_journey(body.journey)
        except UnknownJourneyError:
            raise UnknownJourney(body.journey, sorted(all_journeys())) from None
        return await enroll(
            temporal(request),
            request.app.state.sessions,
            task_queue=settings.task_queue,
            lead_in=body.lead,
            definition=definition,
            suppressions=SuppressionList(settings.require_secret_key()),
            lifecycle=lifecycle(request),
            consent=body.consent,
            consent_text_version=settings.consent_text_version,
        )

    @app.post(
        "/v1/events",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EventResult,
        tags=["events"],
        responses={404: {"description": "No lead with this id"}},
    )
    async def create_event(body: EventIn, request: Request, _: MarketingKey) -> EventResult:
        """Report engagement (a click, open, download, …) for a lead's running journeys.

        Sending the same `event_id` again is harmless: it counts once.
        """
        refuse_future(body, datetime.now(UTC))
        return await record_event(
            temporal(request), request.app.state.sessions, body, lifecycle(request)
        )

    @app.get(
        "/v1/leads/{lead_id}",
        response_model=LeadView,
        tags=["leads"],
        responses={
            403: {"description": "A sales rep's key asked for another rep's lead"},
            404: {"description": "No lead with this id"},
        },
    )
    async def get_lead(lead_id: LeadId, request: Request, holder: MarketingOrSalesKey) -> LeadView:
        """A lead with its stage, score, journeys (current step) and a timeline of emails,
        events, score changes, stage transitions, handovers, consent and sales feedback."""
        await ensure_may_see(request.app.state.sessions, holder, lead_id)
        return await read_lead(
            temporal(request),
            request.app.state.sessions,
            SuppressionList(settings.require_secret_key()),
            lead_id,
        )

    @app.get(
        "/v1/leads/{lead_id}/score",
        response_model=ScoreExplanation,
        tags=["leads"],
        responses={
            403: {"description": "A sales rep's key asked for another rep's lead"},
            404: {"description": "No lead with this id"},
        },
    )
    async def get_score(
        lead_id: LeadId, request: Request, holder: MarketingOrSalesKey
    ) -> ScoreExplanation:
        """The lead's score now, with the contributions that add up to it."""
        await ensure_may_see(request.app.state.sessions, holder, lead_id)
        return await read_score(request.app.state.sessions, lead_id)

    @app.post(
        "/v1/leads/{lead_id}/sales-feedback",
        response_model=FeedbackResult,
        tags=["sales"],
        responses={
            403: {"description": "A sales rep's key gave feedback on another rep's lead"},
            404: {"description": "No lead with this id"},
            409: {"description": "The feedback does not fit the lead's stage (current_stage)"},
        },
    )
    async def post_sales_feedback(
        lead_id: LeadId,
        body: SalesFeedbackIn,
        request: Request,
        holder: SalesKey,
        idempotency_key: Annotated[
            str | None,
            Header(max_length=200, pattern=r"^[\x21-\x7e]+$", description="Makes retries safe"),
        ] = None,
    ) -> FeedbackResult:
        """Accept, reject (with a reason), qualify, win or lose a lead.

        Rejecting returns the lead to nurture (`recycled-nurture`) with a cool-down before it
        can be an MQL again; the last allowed rejection disqualifies it. Feedback that does not
        fit the lead's stage is refused with 409 and the stage the lead is in. A rep's key
        gives feedback on the rep's own leads, as that rep.
        """
        await ensure_may_see(request.app.state.sessions, holder, lead_id)
        if holder.rep is not None:
            body = body.model_copy(update={"rep": holder.rep})
        return await give_feedback(
            lifecycle(request),
            request.app.state.sessions,
            lead_id,
            body,
            idempotency_key,
            actor=caller_name(holder),
        )

    @app.post(
        "/v1/crm/webhook",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=CrmStatusAccepted,
        tags=["sales"],
        responses={
            401: {"description": "Missing, malformed, stale or forged X-Nurture-Signature"},
            409: {"description": "This signed request was already received (a replay)"},
            422: {"description": "Unknown CRM status"},
        },
    )
    async def crm_webhook(request: Request) -> CrmStatusAccepted:
        """A CRM reports a lead's status change (e.g. `Unqualified`), signed with
        `CRM_WEBHOOK_SECRET`: it becomes the same sales feedback, applied asynchronously."""
        body = await request.body()
        try:
            digest = verify(
                body,
                request.headers.get(SIGNATURE_HEADER),
                settings.require_crm_webhook_secret(),
            )
        except (SignatureInvalid, SettingsError) as exc:
            raise SignatureRejected(str(exc)) from None
        try:
            change = CrmStatusChange.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None
        async with webhook_receipt(request.app.state.sessions, digest):
            return await crm_status_changed(lifecycle(request), request.app.state.sessions, change)

    @app.delete(
        "/v1/leads/{lead_id}",
        response_model=ErasureResult,
        tags=["leads"],
        responses={
            404: {"description": "No lead with this id"},
            502: {"description": "Erased, but the CRM could not be told; repeat to retry"},
        },
    )
    async def delete_lead(lead_id: LeadId, request: Request, _: AdminKey) -> ErasureResult:
        """Erase a lead (GDPR art. 17): personal data removed, analytics rows anonymised,
        its workflows ended, the CRM told. Repeating it is harmless."""
        return await erase_lead(temporal(request), request.app.state.sessions, settings, lead_id)

    @app.get(
        "/v1/templates/{name:path}/preview",
        response_model=TemplatePreview,
        tags=["journeys"],
        responses={404: {"description": "No such template or lead"}},
    )
    async def get_template_preview(
        name: Annotated[str, Path(max_length=200, pattern=r"^[a-z0-9_/]+$")],
        request: Request,
        _: MarketingKey,
        lead_id: Annotated[str | None, Query(pattern=r"^[0-9a-f-]{36}$")] = None,
        persona: Annotated[str, Query(max_length=64)] = "decision-maker",
    ) -> TemplatePreview:
        """An email template rendered for a lead (`lead_id`) or a persona's sample lead."""
        return await preview_template(
            settings, request.app.state.sessions, name, lead_id=lead_id, persona=persona
        )

    app.include_router(enrollment_router(settings))
    app.include_router(report_router())
    app.include_router(public_router(settings))
    app.include_router(signup_router(settings))
    app.include_router(inbox_router(settings, failed_auth))

    _document_common_errors(app)

    @app.get("/healthz", tags=["operations"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


_AUTH_ERRORS = {
    "401": {"description": "No API key, or an unknown one (`WWW-Authenticate: Bearer`)"},
    "403": {"description": "The key's role may not do this; the message names the roles"},
}
_UNAVAILABLE = {"503": {"description": "The workflow engine is unreachable; retry shortly"}}
_UNPARSEABLE = {"400": {"description": "The body can't be parsed (not UTF-8, not JSON)"}}
_TOO_LARGE = {"413": {"description": "The body is larger than this endpoint takes"}}


def _document_common_errors(app: FastAPI) -> None:
    """Add the answers every keyed endpoint can give (401, 403, 503) to the OpenAPI spec,
    so clients and contract tests see them documented once, consistently."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        for path, operations in spec.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if operation.get("security"):
                    for code, answer in _AUTH_ERRORS.items():
                        responses.setdefault(code, answer)
                for code, answer in _UNAVAILABLE.items():
                    responses.setdefault(code, answer)
                if operation.get("security"):
                    responses.setdefault("429", {"description": "Too many unknown keys from "
                                                 "this address; see Retry-After"})  # fmt: skip
                if "requestBody" in operation:
                    for code, answer in (_UNPARSEABLE | _TOO_LARGE).items():
                        responses.setdefault(code, answer)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
