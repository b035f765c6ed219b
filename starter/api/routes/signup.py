"""Nurture's hosted sign-up form, `/f/{form}`: the one place where a person, in their own
browser, asks to be mailed. It is what lets a suppressed (unsubscribed, bounced …) address
back in: the form fill sends a confirmation email, and only the click on its link lifts
the suppression. A website's backend relaying the same form (`POST /v1/forms/…`) can't
do that: its word is a claim, not the person's act.

Cross-site posts are refused (`Sec-Fetch-Site`, or `Origin`), and the form carries a signed,
timed token, so a page elsewhere can't sign a visitor up unseen.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse
from itsdangerous import BadData, URLSafeTimedSerializer
from pydantic import ValidationError

from db.suppression_list import SuppressionList
from journeys.consent import ClaimSource, ConsentStatus
from journeys.forms import FORMS, FormDefinition
from starter.api.pages import render_page
from starter.api.rate_limits import AttemptLimiter
from starter.api.request_guard import same_site
from starter.api.routes.email_links import client_of
from starter.services.enrollment import LeadIn
from starter.services.forms import FormConsent, FormSubmission, submit_form
from starter.settings import Settings

# A form page's token is good for a day: long enough to fill it in, short enough not to
# be harvested and replayed.
FORM_TOKEN_MAX_AGE = 24 * 3600
# Form fills per client address and hour: a person needs one; a script mailing
# confirmations to a list of strangers is slowed to a trickle.
FILLS_PER_HOUR = 30
FormName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")]


def signup_router(settings: Settings) -> APIRouter:
    """`GET` and `POST /f/{form}`."""
    router = APIRouter(include_in_schema=False)
    signer = URLSafeTimedSerializer(settings.require_secret_key(), salt="nurture.signup-form")
    suppressions = SuppressionList(settings.require_secret_key())
    sender_name = parseaddr(settings.mail_from)[0] or "us"
    fills = AttemptLimiter(limit=FILLS_PER_HOUR, window=3600)

    def form_page(form: FormDefinition, status: int = 200, problem: str = "",
                  **values: str) -> HTMLResponse:  # fmt: skip
        return render_page(
            settings,
            "signup.html",
            status,
            title="Subscribe",
            action=f"/f/{form.name}",
            token=signer.dumps(form.name),
            problem=problem,
            sender_name=sender_name,
            double_opt_in=form.double_opt_in,
            email=values.get("email", ""),
            first_name=values.get("first_name", ""),
            company=values.get("company", ""),
        )

    def unknown_form() -> HTMLResponse:
        return render_page(
            settings, "page.html", 404, title="No such form", message="This form does not exist."
        )

    @router.get("/f/{form}", response_class=HTMLResponse)
    async def signup_page(form: FormName) -> HTMLResponse:
        """The form: email, name, company, and the consent checkbox (unticked)."""
        definition = FORMS.get(form)
        return unknown_form() if definition is None else form_page(definition)

    @router.post("/f/{form}", response_class=HTMLResponse)
    async def signup(
        form: FormName,
        request: Request,
        token: Annotated[str, Form(max_length=300)] = "",
        email: Annotated[str, Form(max_length=320)] = "",
        first_name: Annotated[str, Form(max_length=100)] = "",
        company: Annotated[str, Form(max_length=200)] = "",
        consent: Annotated[str, Form(max_length=10)] = "",
    ) -> HTMLResponse:
        """The person's own form fill: enroll, and start a double opt-in (always, for a
        suppressed address)."""
        definition = FORMS.get(form)
        if definition is None:
            return unknown_form()
        values = {"email": email, "first_name": first_name, "company": company}
        if not same_site(request.headers, str(request.url), settings.public_base_url):
            return form_page(definition, 403, "Please fill in the form on this page.", **values)
        ip, user_agent = client_of(request)
        if (wait := fills.retry_after(ip or "unknown")) is not None:
            page = form_page(definition, 429, "Too many sign-ups from here: try again later.")
            page.headers["Retry-After"] = str(wait)
            return page
        fills.record(ip or "unknown")
        try:
            if signer.loads(token, max_age=FORM_TOKEN_MAX_AGE) != form:
                raise BadData("another form's token")
        except (BadData, UnicodeError, ValueError):
            return form_page(
                definition, 400, "This form has expired: please fill it in again.", **values
            )
        if consent != "yes":
            return form_page(
                definition, 422, "Please tick the box to agree to receive our emails.", **values
            )
        try:
            lead = LeadIn.model_validate(
                {"email": email, "first_name": first_name or None, "company": company or None}
            )
        except ValidationError as exc:
            field = str(exc.errors()[0]["loc"][0]).replace("_", " ")
            return form_page(definition, 422, f"Please check the {field}.", **values)
        result = await submit_form(
            request.app.state.temporal,
            request.app.state.sessions,
            request.app.state.lifecycle,
            task_queue=settings.task_queue,
            form=definition,
            submission=FormSubmission(
                lead=lead,
                consent=FormConsent(marketing=True, text_version=settings.consent_text_version),
                ip=ip,
                user_agent=user_agent,
            ),
            consent_text_version=settings.consent_text_version,
            suppressions=suppressions,
            public_base_url=settings.public_base_url,
            source=ClaimSource.OWN_FORM_FILL,
        )
        if result.consent_status == ConsentStatus.PENDING:
            message = "Almost done: we have sent you an email with a link to confirm."
        else:
            message = "Thank you for subscribing."
        return render_page(settings, "page.html", title="Thank you", message=message)

    return router
