"""`dormant`: confirmed subscribers who stopped reading — no open or click for 60 days.

A lead created less than 60 days ago is not dormant: it has not been silent that long.
"""

from datetime import timedelta

from journeys.consent import ConsentStatus
from journeys.dsl import EventType
from journeys.segment_dsl import all_of, field, no_events
from journeys.segment_validation import define_segment

SEGMENT = define_segment(
    "dormant",
    "Consent confirmed, but no email open or click for 60 days.",
    all_of(
        field("consent_status", "eq", ConsentStatus.CONFIRMED),
        no_events((EventType.EMAIL_OPEN, EventType.EMAIL_CLICK), for_=timedelta(days=60)),
    ),
)
