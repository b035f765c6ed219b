"""`trial-onboarding`: welcome a trial user, nudge, and hand demo requests to sales."""

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
    SendWindow,
    SetLeadFields,
    Wait,
    WaitForEvent,
)
from journeys.triggers import on_event
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="trial-onboarding",
    description="Welcome, a nudge for the inactive, help for big accounts, demo → sales.",
    entry="welcome",
    steps=(
        SendEmail(id="welcome", template="ws_welcome", next="await_login"),
        WaitForEvent(
            id="await_login",
            events=(EventType.PAGE_VIEW,),  # the app reports logins as page views
            timeout=timedelta(days=2),
            on_event="active",
            on_timeout="office_hours",
        ),
        Wait(id="office_hours", send_window=SendWindow(start_hour=9, end_hour=17), next="nudge"),
        SendEmail(id="nudge", template="ws_tips", next="size"),
        SetLeadFields(id="active", add_score=10, next="size"),
        Branch(
            id="size",
            cases=(
                BranchCase(
                    when=(Condition(attribute="company_size", op="gte", value=500),),
                    next="offer_demo",
                ),
            ),
            default="done",
        ),
        SendEmail(id="offer_demo", template="ws_demo_offer", next="await_demo"),
        WaitForEvent(
            id="await_demo",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(days=7),
            on_event="hand_over",
            on_timeout="done",
        ),
        HandOver(id="hand_over", reason="trial: demo requested", next="done"),
        End(id="done"),
    ),
    exit_goals=(
        ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),
        ExitGoal(name="became-customer", on_stage=LifecycleStage.CUSTOMER),
    ),
    reentry={"policy": "periodic", "every": timedelta(days=90)},
)
# Starts itself: a `trial_started` event (a custom type, journeys/events/catalog.py).
TRIGGERS = (on_event("trial_started"),)
