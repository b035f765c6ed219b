"""`pricing-visitors`: leads weighing the price — three pricing page views in a week."""

from datetime import timedelta

from journeys.dsl import EventType
from journeys.segment_dsl import events, prop
from journeys.segment_validation import define_segment

SEGMENT = define_segment(
    "pricing-visitors",
    "At least three page views of /pricing within 7 days.",
    events(
        EventType.PAGE_VIEW,
        at_least=3,
        within=timedelta(days=7),
        where=[prop("url", "contains", "/pricing")],
    ),
)
