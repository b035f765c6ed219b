"""`hot-mqls`: leads sales should call today — a high-scoring MQL, or anyone (not yet with
sales, not disqualified) who asked for a demo in the last two weeks."""

from datetime import timedelta

from journeys.dsl import EventType, LifecycleStage
from journeys.segment_dsl import all_of, any_of, events, field, not_
from journeys.segment_validation import define_segment

SEGMENT = define_segment(
    "hot-mqls",
    "An MQL scoring 80 or more, or a demo request within 14 days from a lead marketing still owns.",
    any_of(
        all_of(
            field("lifecycle_stage", "eq", LifecycleStage.MQL),
            field("score", "gte", 80),
        ),
        all_of(
            events(EventType.DEMO_REQUEST, within=timedelta(days=14)),
            not_(
                field(
                    "lifecycle_stage",
                    "in",
                    [
                        LifecycleStage.SAL,
                        LifecycleStage.SQL,
                        LifecycleStage.OPPORTUNITY,
                        LifecycleStage.CUSTOMER,
                        LifecycleStage.DISQUALIFIED,
                    ],
                )
            ),
        ),
    ),
)
