"""`mql-alert`: the moment a lead becomes an MQL, its owner gets an internal alert (an
example of a stage trigger; the lead itself is mailed nothing by this journey)."""

from journeys.dsl import End, LifecycleStage, NotifyOwner
from journeys.triggers import on_stage
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="mql-alert",
    description="Stage becomes MQL → the owner gets an internal alert email.",
    entry="alert",
    steps=(
        NotifyOwner(id="alert", template="mql_alert", next="done"),
        End(id="done"),
    ),
    reentry={"policy": "always"},
)
TRIGGERS = (on_stage(LifecycleStage.MQL),)
