"""Every attribute a branch condition may name resolves for a lead that has it: a condition
the DSL accepts but the facts never carry could never match (it was so for `seniority`)."""

from __future__ import annotations

import pytest

from activities.leads import lead_facts
from db.models import Lead
from journeys.conditions import attribute_value, holds
from journeys.dsl import LEAD_ATTRIBUTES, Condition
from journeys.seniority import Seniority, seniority_of

A_FULL_LEAD = Lead(
    persona="decision-maker",
    score=70,
    fit_score=50,
    behaviour_score=20,
    lifecycle_stage="mql",
    title="VP Marketing",
    company_size=800,
    industry="software",
    country="DE",
    properties={"plan": "trial"},
)


@pytest.mark.parametrize("attribute", LEAD_ATTRIBUTES)
def test_every_condition_attribute_has_a_value_for_a_lead_that_has_it(attribute: str) -> None:
    assert attribute_value(lead_facts(A_FULL_LEAD), attribute) is not None


def test_a_branch_on_seniority_matches_the_leads_title() -> None:
    facts = lead_facts(A_FULL_LEAD)

    assert holds(Condition(attribute="seniority", op="eq", value="vp"), facts)
    assert not holds(Condition(attribute="seniority", op="eq", value="c_level"), facts)


@pytest.mark.parametrize(
    ("title", "level"),
    [("Chief of Staff", Seniority.C_LEVEL), ("VP and Head of Sales", Seniority.VP),
     ("Director of IT", Seniority.DIRECTOR), ("Team Lead", Seniority.MANAGER),
     ("Marketing Intern", Seniority.STUDENT), ("Engineer", None), (None, None),
     ("Directory Services Admin", None)],
)  # fmt: skip
def test_seniority_reads_whole_words_of_the_title(title: str | None, level: Seniority) -> None:
    assert seniority_of(title) == level
