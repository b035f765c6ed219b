"""The scoring activity: rescore a lead with its persona's model, keep the history, and
score its account (account-based marketing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import SCORE_LEAD, ScoreLeadRequest, ScoreLeadResult
from db.models import Account, Lead, ScoreRecord, as_utc
from journeys.accounts import ACCOUNT_MODEL, account_qualifies
from journeys.dsl import LifecycleStage
from journeys.scoring import ScoreExplanation
from journeys.scoring_models import scoring_model_for
from starter.services.score_explanation import explain_and_tally


async def rescore(session: AsyncSession, lead: Lead, now: datetime, cause: str) -> ScoreExplanation:
    """Recompute the lead's score, its new events folded into its tally, and, if it
    changed, store it and a history record. The caller holds the lead's row lock (two
    folds at once would each miss the other's events) and commits."""
    explanation = await explain_and_tally(session, lead, now)
    changed = (lead.fit_score, lead.behaviour_score, lead.score) != (
        explanation.fit,
        explanation.behaviour,
        explanation.total,
    )
    first = lead.scored_at is None
    lead.scored_at = now
    if changed or first:
        lead.fit_score, lead.behaviour_score = explanation.fit, explanation.behaviour
        lead.score = explanation.total
        session.add(
            ScoreRecord(
                lead_id=lead.id,
                at=now,
                model=explanation.model,
                fit=explanation.fit,
                behaviour=explanation.behaviour,
                total=explanation.total,
                cause=cause[:200],
                contributions=[c.model_dump() for c in explanation.contributions],
            )
        )
    return explanation


class ScoringActivities:
    """Scoring with injected database sessions."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    @activity.defn(name=SCORE_LEAD.name)
    async def score_lead(self, request: ScoreLeadRequest) -> ScoreLeadResult:
        """Rescore the lead at the workflow's `now`; report its lifecycle facts."""
        async with self._sessions() as session:
            # NO KEY UPDATE: events of the lead are inserted meanwhile (`load_lead`).
            lead = await session.get(Lead, request.lead_id, with_for_update={"key_share": True})
            model = scoring_model_for(lead.persona if lead else None)
            if lead is None or lead.erased_at is not None:
                return ScoreLeadResult(
                    fit=0, behaviour=0, total=0, qualifies=False,
                    stage=LifecycleStage.DISQUALIFIED, owner=None, mql_cycles=0, rejections=0,
                    mql_blocked_until=None, policy=model.policy, rescore_at=None, erased=True,
                )  # fmt: skip
            explanation = await rescore(session, lead, request.now, request.cause)
            account_id, qualified = await self._score_account(session, lead, request.now)
            result = ScoreLeadResult(
                fit=explanation.fit,
                behaviour=explanation.behaviour,
                total=explanation.total,
                qualifies=explanation.qualifies,
                stage=LifecycleStage(lead.lifecycle_stage),
                owner=lead.owner,
                mql_cycles=lead.mql_cycles,
                rejections=lead.rejections,
                mql_blocked_until=(
                    blocked
                    if (blocked := as_utc(lead.mql_blocked_until)) and blocked > request.now
                    else None
                ),
                policy=model.policy,
                rescore_at=self._rescore_at(explanation, request.now, model.policy.rescore_every),
                account_id=account_id,
                account_qualified=qualified,
                consent_status=lead.consent_status,
            )
            await session.commit()
            return result

    @staticmethod
    def _rescore_at(
        explanation: ScoreExplanation, now: datetime, every: timedelta
    ) -> datetime | None:
        # Decaying behaviour changes by itself: look again later. A score of fit and
        # adjustments only (or nothing but penalties that don't decay) stays as it is.
        decaying = any(
            c.kind == "behaviour" and c.points > 0 and c.label != "inactive"
            for c in explanation.contributions
        )
        return now + every if decaying else None

    async def _score_account(
        self, session: AsyncSession, lead: Lead, now: datetime
    ) -> tuple[str | None, bool]:
        """Score the lead's account from its contacts; mark it qualified the first time."""
        if lead.account_id is None:
            return None, False
        await session.flush()
        behaviours = (
            (
                await session.execute(
                    # Only engaged contacts count (score and qualification alike): a big
                    # account's thousands of unengaged contacts are never loaded.
                    select(Lead.behaviour_score).where(
                        Lead.account_id == lead.account_id,
                        Lead.erased_at.is_(None),
                        Lead.behaviour_score > 0,
                    )
                )
            )
            .scalars()
            .all()
        )
        # One statement, the transaction's last before its commit: the account's row is
        # locked only for that instant. (Locked for the whole rescore, every rescore of an
        # active account's contacts queued behind it, and the lock waits chained with the
        # events' rows.)
        qualifies = account_qualifies(list(behaviours), ACCOUNT_MODEL)
        qualified_at = (
            await session.execute(
                update(Account)
                .where(Account.id == lead.account_id)
                .values(
                    score=int(sum(b for b in behaviours if b > 0)),
                    qualified_at=func.coalesce(Account.qualified_at, now if qualifies else None),
                )
                .returning(Account.qualified_at)
            )
        ).scalar_one()
        return lead.account_id, qualified_at is not None


async def contacts_of(session: AsyncSession, account_id: str) -> int:
    """How many (unerased) contacts an account has."""
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(Lead)
                .where(Lead.account_id == account_id, Lead.erased_at.is_(None))
            )
        ).scalar_one()
    )
