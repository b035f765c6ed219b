"""`post-purchase`: for new customers — onboarding, a review request once they have used the
product for a while, and a cross-sell offer.

The lead's lifecycle enrolls a lead here when sales mark the deal won.
"""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, SetLeadFields, Wait, WaitForEvent
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="post-purchase",
    description="Customer onboarding, a review request after a month, then a cross-sell offer.",
    entry="onboarding",
    steps=(
        SendEmail(id="onboarding", template="customer_onboarding", next="settle_in"),
        Wait(id="settle_in", duration=timedelta(days=30), next="review_request"),
        SendEmail(id="review_request", template="customer_review_request", next="await_review"),
        WaitForEvent(
            id="await_review",
            events=(EventType.EMAIL_CLICK,),
            timeout=timedelta(days=14),
            on_event="reviewed",
            on_timeout="cross_sell",
        ),
        SetLeadFields(id="reviewed", properties={"review_requested": "clicked"}, next="cross_sell"),
        SendEmail(id="cross_sell", template="customer_cross_sell", next="done"),
        End(id="done"),
    ),
    exit_goals=(ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),),
)
