"""Topics: the subscription groups a lead can opt out of one by one (the preference center).

Every marketing email belongs to exactly one topic: a broadcast names its topic, a journey's
emails belong to the journey's `topic` (`follow-ups` unless it says otherwise). A lead with
confirmed marketing consent is subscribed to every topic until it opts out of one; only
its choices are stored (`topic_subscriptions`), so no row means "subscribed, any
frequency". A topic opt-out is undone only by the lead's own action on the preference page.

Declared as code, like journeys: add a `Topic` to `TOPICS` to ship one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

TOPIC_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class Topic(BaseModel):
    """A subscription group: its name (in URLs, tokens and rows), and what the preference
    page shows the lead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TOPIC_NAME_PATTERN)
    label: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=300)


# The topic of journey emails that don't name one.
JOURNEY_TOPIC = "follow-ups"

TOPICS: tuple[Topic, ...] = (
    Topic(
        name="newsletter",
        label="Newsletter",
        description="Our newsletter: articles, guides and what's new, about once a month.",
    ),
    Topic(
        name="product-updates",
        label="Product updates",
        description="New features and changes to the product.",
    ),
    Topic(
        name="events",
        label="Events and webinars",
        description="Invitations to webinars, live demos and events, and their reminders.",
    ),
    Topic(
        name=JOURNEY_TOPIC,
        label="Follow-ups",
        description="Emails that follow up on something you did: a guide you downloaded, "
        "a trial you started, a question you asked.",
    ),
)
TOPIC_NAMES = frozenset(topic.name for topic in TOPICS)


class UnknownTopicError(LookupError):
    """No topic has this name."""


def get_topic(name: str) -> Topic:
    """The topic called `name`."""
    for topic in TOPICS:
        if topic.name == name:
            return topic
    raise UnknownTopicError(name)


class Frequency(StrEnum):
    """How often a lead wants a topic's emails: every one, or at most one a week / month."""

    ANY = "any"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


# The least time between two emails of one topic at each frequency.
FREQUENCY_PERIOD: dict[Frequency, timedelta] = {
    Frequency.WEEKLY: timedelta(days=7),
    Frequency.MONTHLY: timedelta(days=30),
}


@dataclass(frozen=True)
class TopicChoice:
    """A lead's choice about one topic. The default (no row) is subscribed, any frequency."""

    subscribed: bool = True
    frequency: Frequency = Frequency.ANY


DEFAULT_CHOICE = TopicChoice()


class TopicAction(StrEnum):
    """What a topic's consent record (`consent_records.action`, with its `topic`) records."""

    UNSUBSCRIBED = "topic_unsubscribed"
    RESUBSCRIBED = "topic_resubscribed"  # only ever by the lead, on the preference page
    FREQUENCY = "topic_frequency"  # the source says which


def changes(before: TopicChoice, after: TopicChoice) -> list[TopicAction]:
    """The consent records a change of choice calls for (none: nothing changed)."""
    found = []
    if before.subscribed != after.subscribed:
        found.append(TopicAction.RESUBSCRIBED if after.subscribed else TopicAction.UNSUBSCRIBED)
    if before.frequency != after.frequency:
        found.append(TopicAction.FREQUENCY)
    return found


def next_allowed(frequency: Frequency, last_sent: datetime | None) -> datetime | None:
    """The earliest moment another email of the topic may go to a lead who chose
    `frequency` and last received one at `last_sent` (None: no limit now)."""
    period = FREQUENCY_PERIOD.get(frequency)
    if period is None or last_sent is None:
        return None
    return last_sent + period


def journey_topic(workflow_id: str) -> str:
    """The topic of the emails a journey's workflow (`journey:<name>:<lead id>`) sends: the
    journey's `topic` as deployed now (a removed journey's: the default)."""
    # Imported here: the registry imports the catalog, which imports the DSL, which
    # imports this module.
    from journeys.registry import all_journeys

    kind, _, rest = workflow_id.partition(":")
    definition = all_journeys().get(rest.rpartition(":")[0]) if kind == "journey" else None
    return definition.topic if definition is not None else JOURNEY_TOPIC
