"""What route handlers depend on, typed: settings, database sessions, the Temporal client,
the lead-workflow handle, link tokens, the suppression list, rate limiters and the
caller's role. Routes declare them as parameters (`sessions: Sessions`); only this module
reads the application's state."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from db.suppression_list import SuppressionList
from starter.api.auth import holder_of
from starter.api.rate_limits import AttemptLimiter
from starter.api.recent_keys import RecentKeys
from starter.api.request_guard import FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW
from starter.services.click_counts import ClickCounts
from starter.services.event_intake import EventIntake
from starter.services.lead_workflow import LeadLifecycle
from starter.services.link_tokens import LinkTokens
from starter.settings import ApiKeyHolder, Role, Settings

# Hosted sign-up form fills per address and hour (a flood of confirmations is abuse).
FILLS_PER_HOUR = 30


@dataclass
class Connections:
    """What the API opens at start-up (the lifespan) and closes at shutdown."""

    temporal: Client
    sessions: async_sessionmaker[AsyncSession]
    lifecycle: LeadLifecycle
    intake: EventIntake
    click_counts: ClickCounts


@dataclass
class ApiState:
    """One API instance's state: made from its settings, plus its connections once open."""

    settings: Settings
    api_keys: dict[str, ApiKeyHolder]
    link_tokens: LinkTokens
    suppressions: SuppressionList
    signup_signer: URLSafeTimedSerializer
    failed_auth: AttemptLimiter = field(
        default_factory=lambda: AttemptLimiter(limit=FAILED_AUTH_LIMIT, window=FAILED_AUTH_WINDOW)
    )
    signup_fills: AttemptLimiter = field(
        default_factory=lambda: AttemptLimiter(limit=FILLS_PER_HOUR, window=3600)
    )
    # Tracking: outbox row → lead, and events already recorded (repeat fetches are free).
    outbox_leads: RecentKeys = field(default_factory=lambda: RecentKeys(100_000))
    recorded_events: RecentKeys = field(default_factory=lambda: RecentKeys(100_000))
    connections: Connections | None = None

    @classmethod
    def of(cls, settings: Settings) -> ApiState:
        """The state for `settings` (raises `SettingsError` if a required one is missing)."""
        api_keys = settings.require_api_keys()
        secret = settings.require_secret_key()
        return cls(
            settings=settings,
            api_keys=api_keys,
            link_tokens=LinkTokens(secret),
            suppressions=SuppressionList(secret),
            signup_signer=URLSafeTimedSerializer(secret, salt="nurture.signup-form"),
        )


def install_state(app: FastAPI, state: ApiState) -> None:
    """Attach `state` to `app` (the one place that writes `app.state`)."""
    app.state.nurture = state


async def api_state(request: Request) -> ApiState:
    """This API instance's state."""
    state: ApiState = request.app.state.nurture
    return state


async def _connections(state: Annotated[ApiState, Depends(api_state)]) -> Connections:
    if state.connections is None:  # only before start-up or after shutdown
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the API is starting")
    return state.connections


State = Annotated[ApiState, Depends(api_state)]
Open = Annotated[Connections, Depends(_connections)]


async def _settings(state: State) -> Settings:
    return state.settings


async def _sessions(open_: Open) -> async_sessionmaker[AsyncSession]:
    return open_.sessions


async def _temporal(open_: Open) -> Client:
    return open_.temporal


async def _lifecycle(open_: Open) -> LeadLifecycle:
    return open_.lifecycle


async def _intake(open_: Open) -> EventIntake:
    return open_.intake


async def _click_counts(open_: Open) -> ClickCounts:
    return open_.click_counts


async def _suppressions(state: State) -> SuppressionList:
    return state.suppressions


async def _link_tokens(state: State) -> LinkTokens:
    return state.link_tokens


Config = Annotated[Settings, Depends(_settings)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
Temporal = Annotated[Client, Depends(_temporal)]
Lifecycle = Annotated[LeadLifecycle, Depends(_lifecycle)]
Intake = Annotated[EventIntake, Depends(_intake)]
Clicks = Annotated[ClickCounts, Depends(_click_counts)]
Suppressions = Annotated[SuppressionList, Depends(_suppressions)]
Tokens = Annotated[LinkTokens, Depends(_link_tokens)]

_bearer = HTTPBearer(auto_error=False, description="An API key from NURTURE_API_KEYS")


def require_role(*allowed: Role) -> Callable[..., Coroutine[Any, Any, ApiKeyHolder]]:
    """A dependency that admits keys of the `allowed` roles (admin is always admitted).

    401 means "who are you?" (no key, or a key we don't know); 403 means "we know you,
    and your role may not do this".
    """
    permitted = {*allowed, Role.ADMIN}

    async def dependency(
        state: State,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKeyHolder:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        holder = holder_of(state.api_keys, credentials.credentials)
        if holder is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if holder.role not in permitted:
            names = ", ".join(sorted(r.value for r in permitted))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {holder.role.value} key may not do this (needs: {names})",
            )
        return holder

    return dependency


# The caller's key, admitted by role (admin is always admitted): 401 for no or an unknown
# key, 403 for a role that may not do this. tests/test_authorisation.py holds the table.
MarketingKey = Annotated[ApiKeyHolder, Depends(require_role(Role.MARKETING))]
SalesKey = Annotated[ApiKeyHolder, Depends(require_role(Role.SALES))]
AdminKey = Annotated[ApiKeyHolder, Depends(require_role(Role.ADMIN))]
MarketingOrSalesKey = Annotated[ApiKeyHolder, Depends(require_role(Role.MARKETING, Role.SALES))]
