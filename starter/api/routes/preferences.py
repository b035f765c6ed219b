"""The preference center: `/p/<token>`, linked from every marketing email's footer.

The signed token (its own salt) names the lead and is the page's only credential: no
account, no cookie. The page lists the topics (journeys.topics) with the lead's choice for
each; a plain form POST (no JavaScript) switches topics on and off, lowers a topic's
frequency (at most weekly or monthly), or unsubscribes from everything. A POST changes
only the token's lead and must come from our own page (`Sec-Fetch-Site`/`Origin`); each
change is recorded as consent evidence. After a POST the browser is sent back to the page
(303), whose notice comes from a fixed list, never from the URL's text.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from journeys.consent import ConsentStatus
from journeys.topics import Frequency
from starter.api.deps import Config, Lifecycle, Sessions, Suppressions, Tokens
from starter.api.pages import render_page
from starter.api.request_guard import same_site
from starter.api.routes.email_links import client_of
from starter.services.consent import unsubscribe
from starter.services.errors import InvalidParameter
from starter.services.link_tokens import TokenInvalid
from starter.services.preferences import (
    Preferences,
    edits_from_form,
    preferences_of,
    save_edits,
)
from starter.settings import Settings

router = APIRouter(tags=["public (signed links)"])

TITLE = "Your email preferences"
# What the page may say after an action: `?notice=<code>` picks one of these.
NOTICES = {
    "saved": "Your choices are saved.",
    "unchanged": "Nothing changed: these were already your choices.",
    "unsubscribed": "You are unsubscribed from all our marketing emails.",
    "stay": "Glad you are staying. Choose below what you would like to receive.",
}
FREQUENCIES = (
    (Frequency.ANY.value, "Every one"),
    (Frequency.WEEKLY.value, "At most one a week"),
    (Frequency.MONTHLY.value, "At most one a month"),
)
# What the page says when the lead gets no marketing email whatever it chooses.
STATUS_MESSAGES = {
    ConsentStatus.PENDING: "You have not confirmed your subscription yet: until you do "
    "(with the link in the email we sent you), we send you nothing. Your choices below "
    "apply from then on.",
    ConsentStatus.UNSUBSCRIBED: "You are unsubscribed from all our marketing emails. To "
    "receive them again, sign up once more: we will send you a link to confirm.",
}
_NOT_MAILED = "We send you no marketing emails."
_INVALID_LINK: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "The link is not valid or has expired (an HTML page)",
        "content": {"text/html": {}},
    }
}


def _not_found(settings: Settings) -> HTMLResponse:
    return render_page(
        settings,
        "page.html",
        404,
        title="Link not valid",
        message="This link is not valid or has expired.",
    )


def _page(
    settings: Settings, token: str, found: Preferences, status: int = 200, **extra: str
) -> HTMLResponse:
    editable = found.consent in (ConsentStatus.CONFIRMED, ConsentStatus.PENDING)
    message = STATUS_MESSAGES.get(found.consent, "" if editable else _NOT_MAILED)
    return render_page(
        settings,
        "preferences.html",
        status,
        title=TITLE,
        action=f"/p/{token}",
        topics=found.topics,
        frequencies=FREQUENCIES,
        editable=editable,
        status_message=message,
        **extra,
    )


def _lead_of(tokens: Tokens, token: str) -> str | None:
    try:
        return tokens.read_preferences(token)
    except TokenInvalid:
        return None


@router.get("/p/{token}", response_class=HTMLResponse, responses=_INVALID_LINK)
async def preference_page(
    token: str, settings: Config, tokens: Tokens, sessions: Sessions, notice: str | None = None
) -> HTMLResponse:
    """The lead's preference page: its topics and its choice for each (looking at it
    changes nothing)."""
    lead_id = _lead_of(tokens, token)
    found = None if lead_id is None else await preferences_of(sessions, lead_id)
    if found is None:
        return _not_found(settings)
    return _page(settings, token, found, notice=NOTICES.get(notice or "", ""))


@router.post(
    "/p/{token}",
    response_class=HTMLResponse,
    status_code=303,
    responses={
        **_INVALID_LINK,
        400: {"description": "The form is not one of ours", "content": {"text/html": {}}},
        403: {"description": "Posted from another site", "content": {"text/html": {}}},
    },
)
async def save_preferences(
    token: str,
    request: Request,
    settings: Config,
    tokens: Tokens,
    sessions: Sessions,
    lifecycle: Lifecycle,
    suppressions: Suppressions,
) -> Response:
    """Apply the form: `action=save` with a `topic` per ticked box, a
    `frequency-<topic>` per topic and, per topic, the state the page showed
    (`shown-topic-<topic>`: on/off, `shown-frequency-<topic>`) — only the fields the
    person changed are applied; or `action=unsubscribe-all`."""
    lead_id = _lead_of(tokens, token)
    found = None if lead_id is None else await preferences_of(sessions, lead_id)
    if lead_id is None or found is None:
        return _not_found(settings)
    if not same_site(request.headers, str(request.url), settings.public_base_url):
        return _page(settings, token, found, 403, error="Please use the form on this page.")
    form = await request.form()
    fields: list[tuple[str, str]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            return _page(settings, token, found, 400, error="That is not what this form sends.")
        fields.append((name, value))
    action = dict(fields).get("action")
    ip, user_agent = client_of(request)
    if action == "unsubscribe-all":
        await unsubscribe(
            lifecycle, sessions, suppressions, lead_id,
            source="preference page", ip=ip, user_agent=user_agent,
        )  # fmt: skip
        return _back(token, "unsubscribed")
    if (
        action != "save"
        or not found.topics
        or found.consent
        not in (
            ConsentStatus.CONFIRMED,
            ConsentStatus.PENDING,
        )
    ):
        return _page(settings, token, found, 400, error="That is not what this form sends.")

    def by_topic(prefix: str) -> dict[str, str]:
        return {name[len(prefix) :]: value for name, value in fields if name.startswith(prefix)}

    try:
        # Only what the person changed on the page it saw: a stale page (loaded before a
        # one-click unsubscribe) re-subscribes nothing it didn't touch.
        edits = edits_from_form(
            [value for name, value in fields if name == "topic"],
            by_topic("frequency-"),
            by_topic("shown-topic-"),
            by_topic("shown-frequency-"),
        )
    except InvalidParameter as problem:
        return _page(settings, token, found, 400, error=problem.message)
    changed = await save_edits(
        sessions, lead_id, edits, source="preference page", ip=ip, user_agent=user_agent
    )
    if changed is None:
        return _not_found(settings)
    return _back(token, "saved" if changed else "unchanged")


def _back(token: str, notice: str) -> RedirectResponse:
    """Back to the page (Post/Redirect/Get: a reload doesn't post again)."""
    return RedirectResponse(f"/p/{token}?notice={notice}", status_code=303)
