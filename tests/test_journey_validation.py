"""Every shipped journey validates; a broken one reports all its problems in one error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from journeys.dsl import (
    Branch,
    BranchCase,
    Condition,
    End,
    EventType,
    SendEmail,
    SetLeadFields,
    WaitForEvent,
)
from journeys.registry import all_journeys
from journeys.validation import JourneyValidationError, define_journey, journey_problems


@pytest.mark.parametrize("name", sorted(all_journeys()))
def test_every_registered_journey_validates_with_its_templates(name: str) -> None:
    assert journey_problems(all_journeys()[name]) == []


def test_the_catalog_ships_the_journeys_of_the_domain() -> None:
    assert {
        "welcome",
        "welcome-series",
        "whitepaper-nurture",
        "webinar-registration",
        "form-reminder",
        "win-back",
        "recycled-nurture",
    } <= set(all_journeys())


def test_a_broken_journey_reports_every_problem_in_one_error() -> None:
    with pytest.raises(JourneyValidationError) as caught:
        define_journey(
            name="broken",
            entry="hello",
            steps=(
                SendEmail(id="hello", template="no_such_template", next="nowhere"),
                Branch(
                    id="pick",
                    cases=(
                        BranchCase(
                            when=(Condition(attribute="score", op="gt", value=5),), next="spin"
                        ),
                    ),
                ),
                SetLeadFields(id="spin", add_score=1, next="spin_more"),
                SetLeadFields(id="spin_more", add_score=1, next="spin"),
            ),
        )

    problems = caught.value.problems
    assert "step 'hello' goes to unknown step 'nowhere'" in problems
    assert "branch 'pick' has no default" in problems
    assert "step 'pick' is unreachable from 'hello'" in problems
    assert "the journey has no end step" in problems
    assert "loop without a wait: spin → spin_more → spin" in problems
    assert "template 'no_such_template' has no no_such_template.html" in problems
    assert len(problems) >= 6
    assert all(p in str(caught.value) for p in problems)


def test_a_template_with_an_undefined_variable_fails_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import journeys.rendering as rendering
    import journeys.validation as validation

    for suffix, body in (
        (".subject.txt", "Hi {{ lead.frist_name }}"),
        (".html", "<p>{{ coupon_code }}</p>"),
        (".txt", "{{ links.nowhere }}"),
    ):
        (tmp_path / f"typo{suffix}").write_text(body)
    monkeypatch.setattr(validation, "TEMPLATE_DIR", tmp_path)
    rendering.template_environment.cache_clear()
    monkeypatch.setattr(rendering, "TEMPLATE_DIR", tmp_path)
    try:
        from jinja2 import FileSystemLoader

        rendering.template_environment().loader = FileSystemLoader(tmp_path)
        with pytest.raises(JourneyValidationError) as caught:
            define_journey(
                name="typos",
                entry="a",
                steps=(SendEmail(id="a", template="typo", next="z"), End(id="z")),
            )
    finally:
        rendering.template_environment.cache_clear()

    assert caught.value.problems == [
        "template typo.subject.txt uses undefined variable 'lead.frist_name'",
        "template typo.html uses undefined variable 'coupon_code'",
        "template typo.txt uses undefined variable 'links.nowhere'",
    ]


def test_a_loop_with_a_wait_is_fine() -> None:
    journey = define_journey(
        name="reminder-loop",
        entry="remind",
        steps=(
            SendEmail(id="remind", template="form_reminder", next="await_submit"),
            WaitForEvent(
                id="await_submit",
                events=(EventType.FORM_SUBMIT,),
                timeout=timedelta(days=2),
                on_event="done",
                on_timeout="remind",
            ),
            End(id="done"),
        ),
    )

    assert journey.entry == "remind"
