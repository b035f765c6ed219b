"""The lifecycle state machine and the sales feedback that moves a lead through it.

subscriber → lead → mql → sal → sql → opportunity → customer, plus recycled (sales sent it
back to nurture) and disqualified. Pure logic: the lead workflow asks it before any change.
"""

from __future__ import annotations

from enum import StrEnum

from journeys.dsl import LifecycleStage as S


class FeedbackOutcome(StrEnum):
    """What sales says about a lead."""

    ACCEPT = "accept"  # MQL → SAL: sales takes it on
    REJECT = "reject"  # MQL/SAL → recycled (or disqualified after too many rejections)
    QUALIFY = "qualify"  # SAL → SQL, SQL → opportunity
    WON = "won"  # SQL/opportunity → customer
    LOST = "lost"  # SQL/opportunity → recycled (closed-lost deals go back to nurture)


ALLOWED_TRANSITIONS: dict[S, frozenset[S]] = {
    S.SUBSCRIBER: frozenset({S.LEAD, S.MQL, S.DISQUALIFIED}),
    S.LEAD: frozenset({S.MQL, S.DISQUALIFIED}),
    S.MQL: frozenset({S.SAL, S.RECYCLED, S.DISQUALIFIED}),
    S.SAL: frozenset({S.SQL, S.RECYCLED, S.DISQUALIFIED}),
    S.SQL: frozenset({S.OPPORTUNITY, S.CUSTOMER, S.RECYCLED, S.DISQUALIFIED}),
    S.OPPORTUNITY: frozenset({S.CUSTOMER, S.RECYCLED, S.DISQUALIFIED}),
    S.CUSTOMER: frozenset(),
    S.RECYCLED: frozenset({S.MQL, S.DISQUALIFIED}),
    S.DISQUALIFIED: frozenset(),
}

# Stages from which a lead may become an MQL (by score or by a journey's hand_over step).
MQL_ELIGIBLE = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if S.MQL in targets)
# Stages in which sales owns the lead (the SLA runs in MQL only).
WITH_SALES = frozenset({S.MQL, S.SAL, S.SQL, S.OPPORTUNITY})


class TransitionRefused(ValueError):
    """A stage change the state machine does not allow."""

    def __init__(self, current: S, target: S, why: str = "") -> None:
        self.current, self.target = current, target
        super().__init__(why or f"a lead in stage {current.value} cannot move to {target.value}")


def transition_allowed(current: S, target: S) -> bool:
    """Whether `current → target` is a transition of the lifecycle."""
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: S, target: S) -> None:
    """Refuse (raise `TransitionRefused`) a transition the lifecycle does not allow."""
    if not transition_allowed(current, target):
        raise TransitionRefused(current, target)


def feedback_target(
    current: S, outcome: FeedbackOutcome, *, rejections: int, max_rejections: int
) -> S:
    """The stage sales feedback moves a lead to, or `TransitionRefused` if it doesn't fit.

    `rejections` counts earlier rejections; the one that reaches `max_rejections`
    disqualifies the lead instead of recycling it.
    """
    match outcome:
        case FeedbackOutcome.ACCEPT:
            sources, target = {S.MQL}, S.SAL
        case FeedbackOutcome.REJECT:
            sources = {S.MQL, S.SAL}
            target = S.DISQUALIFIED if rejections + 1 >= max_rejections else S.RECYCLED
        case FeedbackOutcome.QUALIFY:
            sources = {S.SAL, S.SQL}
            target = S.SQL if current == S.SAL else S.OPPORTUNITY
        case FeedbackOutcome.WON:
            sources, target = {S.SQL, S.OPPORTUNITY}, S.CUSTOMER
        case FeedbackOutcome.LOST:
            sources, target = {S.SQL, S.OPPORTUNITY}, S.RECYCLED
    if current not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise TransitionRefused(
            current,
            target,
            f"{outcome.value} applies to a lead in stage {allowed}; this lead is {current.value}",
        )
    check_transition(current, target)
    return target


# How a CRM's lead or deal status maps onto sales feedback (inbound CRM webhook).
CRM_STATUS_OUTCOMES: dict[str, FeedbackOutcome] = {
    "working": FeedbackOutcome.ACCEPT,
    "accepted": FeedbackOutcome.ACCEPT,
    "contacted": FeedbackOutcome.ACCEPT,
    "unqualified": FeedbackOutcome.REJECT,
    "rejected": FeedbackOutcome.REJECT,
    "nurture": FeedbackOutcome.REJECT,
    "qualified": FeedbackOutcome.QUALIFY,
    "converted": FeedbackOutcome.QUALIFY,
    "closed won": FeedbackOutcome.WON,
    "closed lost": FeedbackOutcome.LOST,
}


def outcome_for_crm_status(status: str) -> FeedbackOutcome | None:
    """The feedback a CRM status means (case and spacing ignored), None if unknown."""
    return CRM_STATUS_OUTCOMES.get(" ".join(status.replace("_", " ").split()).casefold())
