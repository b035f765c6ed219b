"""CRM handover activities: route the lead (or account), record it, deliver it to the CRM.

Adapters: `builtin` (the `crm_handovers` table is the CRM) and `webhook` (a signed JSON
POST to a real CRM). Either way the row with the handover's key is written first, so a
retry or a crashed worker never creates a second handover for the same MQL cycle; a
webhook retry re-sends the same `Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    HAND_OVER,
    HAND_OVER_ACCOUNT,
    HAND_OVER_LEAD,
    HandOverAccountRequest,
    HandOverAccountResult,
    HandOverLeadRequest,
    HandOverLeadResult,
    HandOverRequest,
    HandOverResult,
)
from activities.leads import load_lead
from activities.scoring import contacts_of
from db.bulk import on_postgresql
from db.models import Account, CrmHandover, Lead, RoutingCursor, utcnow
from db.writes import insert_ignoring_conflict, insert_once
from journeys.handover import HandoverStatus
from journeys.routing import RoutingDecision, route_lead
from journeys.sales_team import SALES_TEAM
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from starter.services.lead_workflow import LeadLifecycle
from starter.services.score_explanation import explain_score
from starter.settings import Settings
from workflows.contracts import LeadNudge

log = logging.getLogger(__name__)


async def next_round_robin_position(session: AsyncSession, name: str = "leads") -> int:
    """Advance the round-robin cursor atomically (in the caller's transaction)."""
    await insert_ignoring_conflict(session, RoutingCursor, {"name": name, "position": 0})
    return int(
        (
            await session.execute(
                update(RoutingCursor)
                .where(RoutingCursor.name == name)
                .values(position=RoutingCursor.position + 1)
                .returning(RoutingCursor.position)
            )
        ).scalar_one()
    )


CRM_CALL_TIMEOUT = 10  # seconds for a whole POST to the CRM
DELIVERY_LOCK_WAIT = "15s"  # for a concurrent attempt's delivery of the same handover
DELIVERY_STALL = "60s"  # a delivery's transaction idle this long is ended by PostgreSQL


class CrmActivities:
    """Handovers with injected settings and sessions (and the lifecycle, for legacy calls)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker,
        lifecycle: LeadLifecycle | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._lifecycle = lifecycle
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        """One HTTP client for the worker's life, made on first use: making one loads the
        CA bundle (≈ 28 ms of CPU here, in the event loop), and its connections to the CRM
        are kept alive between handovers."""
        if self._http is None:
            # No cap on connections: as many deliveries at once as the worker runs (each
            # made its own client before), idle ones kept for the next.
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
            self._http = httpx.AsyncClient(timeout=CRM_CALL_TIMEOUT, limits=limits)
        return self._http

    async def _route(
        self, session: AsyncSession, lead: Lead | None, account: Account | None, exclude: str | None
    ) -> RoutingDecision:
        return route_lead(
            SALES_TEAM,
            account_owner=account.owner if account else None,
            country=lead.country if lead else None,
            industry=lead.industry if lead else None,
            round_robin_position=await next_round_robin_position(session),
            exclude=exclude,
        )

    @activity.defn(name=HAND_OVER_LEAD.name)
    async def hand_over_lead(self, request: HandOverLeadRequest) -> HandOverLeadResult:
        """Route and record the handover once per key, then deliver it to the CRM."""
        async with self._sessions() as session:
            row, created = await self._record_and_deliver(
                session, request.idempotency_key, lambda: self._lead_handover(session, request)
            )
            assert row.owner is not None
            return HandOverLeadResult(
                handover_id=row.id,
                owner=row.owner,
                rule=row.routing_rule or "",
                created=created,
            )

    async def _lead_handover(
        self, session: AsyncSession, request: HandOverLeadRequest
    ) -> CrmHandover:
        """A new lead handover, routed (a reassignment closes the cycle's open one)."""
        lead = await load_lead(session, request.lead_id, lock=True, erased_too=False)
        account = await session.get(Account, lead.account_id) if lead.account_id else None
        decision = await self._route(session, lead, account, request.reassign_from)
        lead.owner = decision.rep_id
        if request.reassign_from is not None:
            await session.execute(
                update(CrmHandover)
                .where(
                    CrmHandover.lead_id == lead.id,
                    CrmHandover.cycle == request.cycle,
                    CrmHandover.status == HandoverStatus.OPEN,
                )
                .values(status=HandoverStatus.REASSIGNED)
            )
        return CrmHandover(
            kind="lead",
            lead_id=request.lead_id,
            account_id=lead.account_id,
            cycle=request.cycle,
            reason=request.reason,
            owner=decision.rep_id,
            routing_rule=decision.rule,
            score=lead.score,
        )

    @activity.defn(name=HAND_OVER_ACCOUNT.name)
    async def hand_over_account(self, request: HandOverAccountRequest) -> HandOverAccountResult:
        """Route a qualified account to its owner (or by the rules), once per account."""
        async with self._sessions() as session:
            row, created = await self._record_and_deliver(
                session, request.idempotency_key, lambda: self._account_handover(session, request)
            )
            assert row.owner is not None
            return HandOverAccountResult(handover_id=row.id, owner=row.owner, created=created)

    async def _account_handover(
        self, session: AsyncSession, request: HandOverAccountRequest
    ) -> CrmHandover:
        """A new account handover: to the account's owner, else by the routing rules."""
        account = await session.get(Account, request.account_id, with_for_update=True)
        lead = await session.get(Lead, request.lead_id)
        assert account is not None
        decision = await self._route(session, lead, account, None)
        account.owner = decision.rep_id
        return CrmHandover(
            kind="account",
            lead_id=None,
            account_id=account.id,
            reason=f"account qualified: score {account.score}",
            owner=decision.rep_id,
            routing_rule=decision.rule,
            score=account.score,
        )

    @activity.defn(name=HAND_OVER.name)
    async def hand_over(self, request: HandOverRequest) -> HandOverResult:
        """Journeys started before the lead workflow existed call this: pass the request on
        to the lead's lifecycle, which hands over once per MQL cycle."""
        assert self._lifecycle is not None
        await self._lifecycle.nudge(
            request.lead_id,
            LeadNudge(cause="journey hand_over", handover_reason=request.reason),
        )
        return HandOverResult(handover_id=0, created=False)

    # --- delivery --------------------------------------------------------------------------

    async def _record_and_deliver(
        self,
        session: AsyncSession,
        key: str,
        new_handover: Callable[[], Awaitable[CrmHandover]],
    ) -> tuple[CrmHandover, bool]:
        """The handover of `key`, found or else made by `new_handover` and inserted once
        (committed: the routing is decided once, and the rows it locked are free before
        the CRM is called); then delivered. Returns it and whether this call delivered it
        (False when a concurrent attempt or an earlier one did)."""
        if await self._handover(session, key) is None:
            new = await new_handover()
            new.idempotency_key, new.adapter = key, self._settings.crm_adapter
            await insert_once(session, new)
        return await self._deliver(session, key)

    async def _handover(
        self, session: AsyncSession, key: str, *, lock: bool = False
    ) -> CrmHandover | None:
        query = select(CrmHandover).where(CrmHandover.idempotency_key == key)
        if lock:  # and read afresh: the session may hold the row as it was before the wait
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await session.execute(query)).scalar_one_or_none()

    async def _deliver(self, session: AsyncSession, key: str) -> tuple[CrmHandover, bool]:
        """Deliver the handover of `key` unless delivered. Its row stays locked across the
        CRM call: a concurrent attempt (another contact qualifying the same account, a
        retry while a timed-out attempt still waits on the CRM) waits, then finds it
        delivered, instead of delivering it a second time. (SQLite, the demo's database,
        ignores the lock: there two attempts at once can both post the same key.)"""
        if on_postgresql(session):
            # Bounds: a waiter gives up after DELIVERY_LOCK_WAIT and its activity retries
            # with backoff; a holder whose process froze mid-call (its connection still
            # open) is cut off by the server after DELIVERY_STALL. The POST itself ends within
            # CRM_CALL_TIMEOUT.
            await session.execute(text(f"SET LOCAL lock_timeout = '{DELIVERY_LOCK_WAIT}'"))
            await session.execute(
                text(f"SET LOCAL idle_in_transaction_session_timeout = '{DELIVERY_STALL}'")
            )
        row = await self._handover(session, key, lock=True)
        assert row is not None
        if row.delivered_at is not None:
            await session.commit()
            return row, False
        if row.adapter == "webhook":
            await self._post(await self._payload(session, row), row.idempotency_key)
        row.delivered_at = utcnow()
        await session.commit()
        return row, True

    async def _payload(self, session: AsyncSession, row: CrmHandover) -> dict[str, Any]:
        """What the CRM receives. It is the CRM's copy of the lead, so it carries the
        contact's details; it goes over HTTPS to the CRM, never into workflow history."""
        owner = SALES_TEAM.rep(row.owner or "")
        payload: dict[str, Any] = {
            "event": f"{row.kind}.handed_over",
            "handover_id": row.id,
            "idempotency_key": row.idempotency_key,
            "reason": row.reason,
            "owner": owner.model_dump() if owner else {"id": row.owner},
            "routing_rule": row.routing_rule,
            "cycle": row.cycle,
        }
        if row.lead_id is not None:
            lead = await session.get(Lead, row.lead_id)
            assert lead is not None
            explanation = await explain_score(session, lead, utcnow())
            payload["lead"] = {
                name: getattr(lead, name)
                for name in (
                    "id", "email", "first_name", "last_name", "company", "title",
                    "company_size", "industry", "country", "persona", "lifecycle_stage",
                )
            }  # fmt: skip
            payload["score"] = explanation.model_dump(mode="json")
        if row.account_id is not None:
            account = await session.get(Account, row.account_id)
            assert account is not None
            payload["account"] = {
                "id": account.id,
                "domain": account.domain,
                "name": account.name,
                "score": account.score,
                "contacts": await contacts_of(session, account.id),
            }
        return payload

    async def _post(self, payload: dict[str, Any], key: str) -> None:
        """POST to the CRM; any failure raises, and the activity retries with backoff."""
        settings = self._settings
        assert settings.crm_webhook_url is not None
        body = json.dumps(payload, default=str, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: sign(body, settings.require_crm_webhook_secret()),
        }
        async with asyncio.timeout(CRM_CALL_TIMEOUT):  # in all: httpx bounds each phase only
            response = await self._client().post(
                settings.crm_webhook_url, content=body, headers=headers
            )
        if response.status_code >= 300:
            raise ApplicationError(
                f"CRM webhook answered {response.status_code}", type="CrmUnavailable"
            )
        log.info("handover %s delivered to the CRM webhook", key)
