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
from itsdangerous import BadData
from pydantic import ValidationError

from journeys.consent import ClaimSource, ConsentStatus
from journeys.forms import FORMS, FormDefinition
from starter.api.deps import FILLS_PER_HOUR as FILLS_PER_HOUR
from starter.api.deps import ApiState, Lifecycle, Sessions, State, Temporal
from starter.api.pages import render_page
from starter.api.request_guard import same_site
from starter.api.routes.email_links import client_of
from starter.services.enrollment import LeadIn
from starter.services.forms import FormConsent, FormSubmission, submit_form
from starter.settings import Settings

# A form page's token is good for a day: long enough to fill it in, short enough not to
# be harvested and replayed.
FORM_TOKEN_MAX_AGE = 24 * 3600
# Form fills per client address and hour are limited to `FILLS_PER_HOUR` (re-exported
# here; `ApiState.signup_fills` counts them): a person needs one; a script mailing
# confirmations to a list of strangers is slowed to a trickle.

FormName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")]

router = APIRouter(include_in_schema=False)


def _sender_name(settings: Settings) -> str:
    """Who the form says will mail the person: the display name of the sender address."""
    return parseaddr(settings.mail_from)[0] or "us"


def _form_page(state: ApiState, form: FormDefinition, status: int = 200, problem: str = "",
               **values: str) -> HTMLResponse:  # fmt: skip
    """The form (with a fresh token), showing `problem` and the `values` filled in."""
    return render_page(
        state.settings,
        "signup.html",
        status,
        title="Subscribe",
        action=f"/f/{form.name}",
        token=state.signup_signer.dumps(form.name),
        problem=problem,
        sender_name=_sender_name(state.settings),
        double_opt_in=form.double_opt_in,
        email=values.get("email", ""),
        first_name=values.get("first_name", ""),
        company=values.get("company", ""),
    )


def _unknown_form(settings: Settings) -> HTMLResponse:
    return render_page(
        settings, "page.html", 404, title="No such form", message="This form does not exist."
    )


def _token_fits(state: ApiState, token: str, form: str) -> bool:
    """Whether `token` is one of our form pages' tokens for `form`, and not expired."""
    try:
        return bool(state.signup_signer.loads(token, max_age=FORM_TOKEN_MAX_AGE) == form)
    except (BadData, UnicodeError, ValueError):
        return False


def _refusal(state: ApiState, form: FormDefinition, request: Request, ip: str | None,
             token: str, consent: str, values: dict[str, str]) -> HTMLResponse | None:  # fmt: skip
    """The form again with what is wrong with this fill, or None if it may go on. A fill
    from elsewhere isn't counted; any other counts towards the address's hourly limit."""
    if not same_site(request.headers, str(request.url), state.settings.public_base_url):
        return _form_page(state, form, 403, "Please fill in the form on this page.", **values)
    if (wait := state.signup_fills.retry_after(ip or "unknown")) is not None:
        page = _form_page(state, form, 429, "Too many sign-ups from here: try again later.")
        page.headers["Retry-After"] = str(wait)
        return page
    state.signup_fills.record(ip or "unknown")
    if not _token_fits(state, token, form.name):
        return _form_page(state, form, 400, "This form has expired: please fill it in again.",
                          **values)  # fmt: skip
    if consent != "yes":
        return _form_page(state, form, 422, "Please tick the box to agree to receive our emails.",
                          **values)  # fmt: skip
    return None


@router.get("/f/{form}", response_class=HTMLResponse)
async def signup_page(form: FormName, state: State) -> HTMLResponse:
    """The form: email, name, company, and the consent checkbox (unticked)."""
    definition = FORMS.get(form)
    return _unknown_form(state.settings) if definition is None else _form_page(state, definition)


@router.post("/f/{form}", response_class=HTMLResponse)
async def signup(
    form: FormName,
    request: Request,
    *,
    token: Annotated[str, Form(max_length=300)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    first_name: Annotated[str, Form(max_length=100)] = "",
    company: Annotated[str, Form(max_length=200)] = "",
    consent: Annotated[str, Form(max_length=10)] = "",
    state: State,
    temporal: Temporal,
    sessions: Sessions,
    lifecycle: Lifecycle,
) -> HTMLResponse:
    """The person's own form fill: enroll, and start a double opt-in (always, for a
    suppressed address)."""
    definition = FORMS.get(form)
    if definition is None:
        return _unknown_form(state.settings)
    values = {"email": email, "first_name": first_name, "company": company}
    ip, user_agent = client_of(request)
    if refusal := _refusal(state, definition, request, ip, token, consent, values):
        return refusal
    try:
        lead = LeadIn.model_validate(
            {"email": email, "first_name": first_name or None, "company": company or None}
        )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]).replace("_", " ")
        return _form_page(state, definition, 422, f"Please check the {field}.", **values)
    settings = state.settings
    result = await submit_form(
        temporal,
        sessions,
        lifecycle,
        task_queue=settings.task_queue,
        form=definition,
        submission=FormSubmission(
            lead=lead,
            consent=FormConsent(marketing=True, text_version=settings.consent_text_version),
            ip=ip,
            user_agent=user_agent,
        ),
        consent_text_version=settings.consent_text_version,
        suppressions=state.suppressions,
        public_base_url=settings.public_base_url,
        source=ClaimSource.OWN_FORM_FILL,
    )
    if result.consent_status == ConsentStatus.PENDING:
        message = "Almost done: we have sent you an email with a link to confirm."
    else:
        message = "Thank you for subscribing."
    return render_page(settings, "page.html", title="Thank you", message=message)
