"""The authorisation table: every endpoint by {anonymous, marketing, sales rep, admin}.

`ok` means the key got past authorisation (the answer is then about the request itself:
404 for the made-up ids used here, 422 for the empty bodies). The table must name every
route the app serves, so a new endpoint can't ship without a decision about who may call it.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi.routing import APIRoute

from starter.api.app import create_app
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, MARKETING_KEY, REP_KEYS

OK, UNAUTHENTICATED, FORBIDDEN = "ok", 401, 403
PUBLIC = "public"  # signed links: no key needed, none checked
SIGNED = "signed"  # the CRM webhook: an HMAC signature, never a key
SESSION = "session"  # the sales inbox: its own login and cookie
PROVIDER = "provider"  # an email provider's webhook: its own signature; 404 until configured

KEYS = {
    "anonymous": None,
    "marketing": MARKETING_KEY,
    "sales": REP_KEYS["alex"],
    "admin": ADMIN_KEY,
}


def row(anonymous: object, marketing: object, sales: object, admin: object) -> dict:
    return {"anonymous": anonymous, "marketing": marketing, "sales": sales, "admin": admin}


MARKETING_ONLY = row(UNAUTHENTICATED, OK, FORBIDDEN, OK)
SALES_ONLY = row(UNAUTHENTICATED, FORBIDDEN, OK, OK)
MARKETING_OR_SALES = row(UNAUTHENTICATED, OK, OK, OK)
ADMIN_ONLY = row(UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK)
ANYONE: dict[str, object] = {role: PUBLIC for role in KEYS}

TABLE: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/v1/enrollments"): MARKETING_ONLY,
    ("POST", "/v1/enrollment-jobs"): MARKETING_ONLY,
    ("POST", "/v1/enrollment-jobs/csv"): MARKETING_ONLY,
    ("GET", "/v1/enrollment-jobs/{job_id}"): MARKETING_ONLY,
    ("GET", "/v1/forms"): MARKETING_ONLY,
    ("POST", "/v1/forms/{form}/submissions"): MARKETING_ONLY,
    ("POST", "/v1/events"): MARKETING_ONLY,
    ("GET", "/v1/journeys"): MARKETING_ONLY,
    ("GET", "/v1/templates/{name}/preview"): MARKETING_ONLY,
    ("GET", "/v1/leads"): MARKETING_OR_SALES,
    ("POST", "/v1/leads"): MARKETING_ONLY,
    ("GET", "/v1/leads/{lead_id}"): MARKETING_OR_SALES,
    ("GET", "/v1/leads/{lead_id}/score"): MARKETING_OR_SALES,
    ("POST", "/v1/leads/{lead_id}/sales-feedback"): SALES_ONLY,
    ("DELETE", "/v1/leads/{lead_id}"): ADMIN_ONLY,
    ("GET", "/v1/exports/leads.csv"): MARKETING_ONLY,
    ("GET", "/v1/analytics/funnel"): MARKETING_ONLY,
    ("GET", "/v1/analytics/funnel.svg"): MARKETING_ONLY,
    ("GET", "/v1/analytics/journeys/{journey}"): MARKETING_ONLY,
    ("GET", "/v1/analytics/deliverability"): MARKETING_ONLY,
    ("GET", "/v1/segments"): MARKETING_ONLY,
    ("GET", "/v1/segments/{name}"): MARKETING_ONLY,
    ("GET", "/v1/segments/{name}/members"): MARKETING_ONLY,
    ("POST", "/v1/segments/{name}/backfill"): MARKETING_ONLY,
    ("GET", "/v1/segments/{name}/backfill"): MARKETING_ONLY,
    ("GET", "/v1/inbound"): ADMIN_ONLY,
    ("POST", "/v1/broadcasts"): MARKETING_ONLY,
    ("GET", "/v1/broadcasts"): MARKETING_ONLY,
    ("GET", "/v1/broadcasts/{broadcast_id}"): MARKETING_ONLY,
    ("POST", "/v1/broadcasts/{broadcast_id}/{action}"): MARKETING_ONLY,
    ("POST", "/v1/webhooks/ses"): {role: PROVIDER for role in KEYS},
    ("POST", "/v1/webhooks/sendgrid"): {role: PROVIDER for role in KEYS},
    ("POST", "/v1/webhooks/postmark"): {role: PROVIDER for role in KEYS},
    ("POST", "/v1/webhooks/mailgun"): {role: PROVIDER for role in KEYS},
    ("POST", "/v1/crm/webhook"): {role: SIGNED for role in KEYS},
    ("GET", "/t/c/{token}"): ANYONE,
    ("GET", "/t/o/{token}.gif"): ANYONE,
    ("GET", "/u/{token}"): ANYONE,
    ("POST", "/u/{token}"): ANYONE,
    ("GET", "/c/{token}"): ANYONE,
    ("POST", "/c/{token}"): ANYONE,
    ("GET", "/p/{token}"): ANYONE,  # the preference page: its signed token is the credential
    ("POST", "/p/{token}"): ANYONE,
    ("GET", "/f/{form}"): ANYONE,  # the hosted sign-up form: a person's own act
    ("POST", "/f/{form}"): ANYONE,
    ("GET", "/inbox"): {role: SESSION for role in KEYS},
    ("GET", "/inbox/login"): {role: SESSION for role in KEYS},
    ("POST", "/inbox/login"): {role: SESSION for role in KEYS},
    ("POST", "/inbox/logout"): {role: SESSION for role in KEYS},
    ("POST", "/inbox/leads/{lead_id}/feedback"): {role: SESSION for role in KEYS},
    ("GET", "/healthz"): ANYONE,
}
SAMPLE_PATH_PARAMS = {
    "lead_id": str(uuid.uuid4()),
    "job_id": str(uuid.uuid4()),
    "form": "newsletter",
    "journey": "welcome",
    "name": "welcome",
    "token": "not-a-token",
    "broadcast_id": str(uuid.uuid4()),
    "action": "pause",
}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _api_routes(routes: list) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers whole
            found += _api_routes(route.original_router.routes)
    return found


def served_routes(settings: Settings) -> set[tuple[str, str]]:
    routes = set()
    for route in _api_routes(create_app(settings).routes):
        path = route.path.replace("{name:path}", "{name}")
        if path not in DOCS:
            assert route.methods is not None  # an APIRoute always has its methods
            routes |= {(method, path) for method in route.methods - {"HEAD"}}
    return routes


def test_the_table_names_every_route_the_api_serves(settings: Settings) -> None:
    assert served_routes(settings) == set(TABLE)


@pytest.mark.parametrize("role", list(KEYS))
async def test_every_endpoint_answers_each_role_as_the_table_says(api_url: str, role: str) -> None:
    key = KEYS[role]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    wrong = []
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        for (method, path), expected in sorted(TABLE.items()):
            url = path.format(**SAMPLE_PATH_PARAMS)
            body: dict[str, object] | None = {} if method in ("POST", "DELETE") else None
            response = await client.request(method, url, json=body if method == "POST" else None)
            status = response.status_code
            want = expected[role]
            fine = {
                OK: status not in (401, 403) and status < 500,
                PUBLIC: status not in (401, 403) and status < 500,
                SIGNED: status == 401,
                PROVIDER: status in (401, 404),
                # 403: a sign-in or action without the form's token (CSRF) is refused.
                SESSION: status in (200, 303, 401, 403),
            }.get(want, status == want)  # type: ignore[call-overload]  # int or marker keys
            if not fine:
                wrong.append(
                    f"{method} {path} as {role}: {status} (want {want}) {response.text[:120]}"
                )
    assert not wrong, "\n".join(wrong)


async def test_401_and_403_say_different_things(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        anonymous = await client.get("/v1/analytics/funnel")
        unknown = await client.get("/v1/analytics/funnel", headers={"Authorization": "Bearer nope"})
        sales = await client.get(
            "/v1/analytics/funnel", headers={"Authorization": f"Bearer {REP_KEYS['sam']}"}
        )

    assert anonymous.status_code == 401 and "missing API key" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert unknown.status_code == 401 and "unknown API key" in unknown.json()["detail"]
    assert sales.status_code == 403 and "needs: admin, marketing" in sales.json()["detail"]
