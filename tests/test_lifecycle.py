"""The lifecycle state machine, sales feedback and routing rules (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from journeys.accounts import AccountModel, account_qualifies, company_domain
from journeys.dsl import LifecycleStage as S
from journeys.lifecycle import (
    FeedbackOutcome as F,
)
from journeys.lifecycle import (
    TransitionRefused,
    check_transition,
    feedback_target,
    outcome_for_crm_status,
)
from journeys.routing import RoutingDecision, RoutingRules, SalesRep, route_lead


def target(stage: S, outcome: F, rejections: int = 0) -> S:
    return feedback_target(stage, outcome, rejections=rejections, max_rejections=3)


def test_the_forward_path_runs_from_lead_to_customer() -> None:
    assert target(S.MQL, F.ACCEPT) == S.SAL
    assert target(S.SAL, F.QUALIFY) == S.SQL
    assert target(S.SQL, F.QUALIFY) == S.OPPORTUNITY
    assert target(S.OPPORTUNITY, F.WON) == S.CUSTOMER


def test_a_rejection_recycles_until_the_last_allowed_one_disqualifies() -> None:
    assert target(S.MQL, F.REJECT, rejections=0) == S.RECYCLED
    assert target(S.SAL, F.REJECT, rejections=1) == S.RECYCLED
    assert target(S.MQL, F.REJECT, rejections=2) == S.DISQUALIFIED


def test_a_lost_deal_goes_back_to_nurture() -> None:
    assert target(S.OPPORTUNITY, F.LOST) == S.RECYCLED


@pytest.mark.parametrize(
    ("stage", "outcome"),
    [
        (S.LEAD, F.REJECT),
        (S.LEAD, F.ACCEPT),
        (S.SAL, F.ACCEPT),
        (S.MQL, F.WON),
        (S.CUSTOMER, F.REJECT),
        (S.RECYCLED, F.ACCEPT),
        (S.MQL, F.LOST),
    ],
)
def test_feedback_that_does_not_fit_the_stage_is_refused(stage: S, outcome: F) -> None:
    with pytest.raises(TransitionRefused) as refused:
        target(stage, outcome)
    assert refused.value.current == stage
    assert stage.value in str(refused.value)


def test_transitions_outside_the_lifecycle_are_refused() -> None:
    check_transition(S.LEAD, S.MQL)
    check_transition(S.RECYCLED, S.MQL)
    for bad in [(S.LEAD, S.CUSTOMER), (S.CUSTOMER, S.LEAD), (S.DISQUALIFIED, S.MQL)]:
        with pytest.raises(TransitionRefused):
            check_transition(*bad)


def test_crm_statuses_map_to_feedback() -> None:
    assert outcome_for_crm_status("Unqualified") == F.REJECT
    assert outcome_for_crm_status("Closed_Won") == F.WON
    assert outcome_for_crm_status("  closed   lost ") == F.LOST
    assert outcome_for_crm_status("Sleeping") is None


TEAM = RoutingRules(
    reps=(
        SalesRep(id="a", name="A", email="a@x"),
        SalesRep(id="b", name="B", email="b@x"),
        SalesRep(id="c", name="C", email="c@x"),
    ),
    by_country={"DE": "c"},
    by_industry={"software": "b"},
)


def route(**kw: Any) -> RoutingDecision:
    args = {"account_owner": None, "country": None, "industry": None, "round_robin_position": 0}
    return route_lead(TEAM, **(args | kw))


def test_routing_prefers_account_owner_then_territory_then_industry_then_round_robin() -> None:
    assert route(account_owner="a", country="DE", industry="software").rule == "account owner"
    assert route(country="de", industry="software").rep_id == "c"
    assert route(country="FR", industry="Software").rep_id == "b"
    assert [route(round_robin_position=i).rep_id for i in range(4)] == ["a", "b", "c", "a"]


def test_reassignment_passes_over_the_rep_who_let_the_sla_lapse() -> None:
    assert route(country="DE", exclude="c", round_robin_position=0).rep_id == "a"
    assert route(account_owner="a", exclude="a", round_robin_position=0).rep_id == "b"


def test_routing_rules_must_name_reps_on_the_team() -> None:
    with pytest.raises(ValueError, match="unknown rep"):
        RoutingRules(reps=TEAM.reps, by_country={"FR": "zed"})


def test_free_mail_addresses_belong_to_no_account() -> None:
    assert company_domain("Ada@Analytical.Example") == "analytical.example"
    assert company_domain("ada@gmail.com") is None


def test_an_account_qualifies_on_combined_engagement_of_enough_contacts() -> None:
    model = AccountModel(threshold=100, min_engaged_contacts=2)
    assert not account_qualifies([120], model)
    assert not account_qualifies([40, 40, -10], model)
    assert account_qualifies([60, 45, 0], model)
