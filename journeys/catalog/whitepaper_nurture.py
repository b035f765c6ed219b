"""`whitepaper-nurture`: deliver a lead magnet, educate, prove, offer a demo, hand over.

Lead-magnet delivery → educational series (A/B tested first email) → case study → demo
offer, with a handover to sales as soon as the lead asks for the demo or its score says
it is ready.
"""

from datetime import timedelta

from journeys.dsl import (
    Branch,
    BranchCase,
    Condition,
    End,
    EventType,
    ExitGoal,
    HandOver,
    LifecycleStage,
    SendEmail,
    SetLeadFields,
    Variant,
    Wait,
    WaitForEvent,
)
from journeys.triggers import on_form
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="whitepaper-nurture",
    description="Whitepaper delivery, a three-week educational series, a demo offer and a "
    "handover to sales when the lead is ready.",
    entry="deliver",
    steps=(
        SendEmail(id="deliver", template="wp_delivery", next="pause_1"),
        Wait(id="pause_1", duration=timedelta(days=2), next="education_1"),
        SendEmail(
            id="education_1",
            variants=(
                Variant(name="metric", template="wp_education_1a"),
                Variant(name="question", template="wp_education_1b"),
            ),
            next="pause_2",
        ),
        Wait(id="pause_2", duration=timedelta(days=4), next="education_2"),
        SendEmail(id="education_2", template="wp_education_2", next="pause_3"),
        Wait(id="pause_3", duration=timedelta(days=4), next="case_study"),
        SendEmail(id="case_study", template="wp_case_study", next="await_engagement"),
        WaitForEvent(
            id="await_engagement",
            events=(EventType.EMAIL_CLICK, EventType.DOWNLOAD, EventType.PAGE_VIEW),
            timeout=timedelta(days=7),
            on_event="engaged",
            on_timeout="ready",
        ),
        SetLeadFields(id="engaged", add_score=20, next="ready"),
        Branch(
            id="ready",
            cases=(
                BranchCase(
                    when=(Condition(attribute="behaviour_score", op="gte", value=50),),
                    next="hand_over",
                ),
                BranchCase(
                    when=(Condition(attribute="company_size", op="gte", value=200),),
                    next="demo_offer",
                ),
            ),
            default="demo_offer",
        ),
        SendEmail(id="demo_offer", template="wp_demo_offer", next="await_demo"),
        WaitForEvent(
            id="await_demo",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(days=10),
            on_event="hand_over",
            on_timeout="cool_off",
        ),
        SetLeadFields(id="cool_off", properties={"whitepaper_nurture": "completed"}, next="done"),
        HandOver(id="hand_over", reason="whitepaper-nurture: ready for sales", next="done"),
        End(id="done"),
    ),
    exit_goals=(
        ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),
        ExitGoal(name="became-customer", on_stage=LifecycleStage.CUSTOMER),
    ),
)

# A submission of the website form `whitepaper-download` enrolls here (journeys/forms.py).
TRIGGERS = (on_form("whitepaper-download"),)
