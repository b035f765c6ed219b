"""The preference center's use cases: what a lead receives, per topic (journeys.topics),
and the lead's own changes to it, each recorded as consent evidence (`consent_records`
with the topic). Only these functions write topic choices, and only the lead's own action
(the preference page, the one-click unsubscribe of a message) calls them: no import,
enrollment or API call claiming consent re-subscribes a topic.

Unsubscribing from everything is the existing unsubscribe (`services.consent`): it puts
the address on the suppression list, which only the lead's own sign-up lifts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import ConsentRecord, Lead, utcnow
from db.topic_subscriptions import choices_of, set_choice
from journeys.consent import ConsentStatus
from journeys.topics import (
    TOPIC_NAMES,
    TOPICS,
    Frequency,
    Topic,
    TopicAction,
    TopicChoice,
    changes,
)
from starter.services.errors import InvalidParameter


@dataclass(frozen=True)
class TopicRow:
    """A topic as the preference page shows it, with the lead's choice."""

    topic: Topic
    choice: TopicChoice


@dataclass(frozen=True)
class Preferences:
    """What a lead receives: its consent (only `confirmed` gets marketing email at all)
    and its choice per topic."""

    lead_id: str
    consent: ConsentStatus
    topics: list[TopicRow]


async def preferences_of(sessions: async_sessionmaker, lead_id: str) -> Preferences | None:
    """The lead's preferences (None: no such lead, or erased)."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.erased_at is not None or lead.email is None:
            return None
        chosen = await choices_of(session, lead_id)
    return Preferences(
        lead_id,
        ConsentStatus(lead.consent_status),
        [TopicRow(topic, chosen[topic.name]) for topic in TOPICS],
    )


def choices_from_form(
    subscribed: Sequence[str], frequencies: Mapping[str, str]
) -> dict[str, TopicChoice]:
    """The choices a submitted preference form states: every declared topic, subscribed
    when its box is ticked (`subscribed` lists those), at its chosen frequency (absent:
    any). An unknown topic or frequency is refused, naming the field."""
    for name in [*subscribed, *frequencies]:
        if name not in TOPIC_NAMES:
            raise InvalidParameter(("body", "topic"), f"unknown topic {name[:64]!r}")
    choices = {}
    for name in sorted(TOPIC_NAMES):
        try:
            frequency = Frequency(frequencies.get(name, Frequency.ANY.value))
        except ValueError:
            raise InvalidParameter(
                ("body", f"frequency-{name}"), "frequency must be any, weekly or monthly"
            ) from None
        choices[name] = TopicChoice(name in subscribed, frequency)
    return choices


@dataclass(frozen=True)
class TopicEdit:
    """What the person changed on one topic of the form: None keeps the lead's current
    value (whatever it is by now)."""

    subscribed: bool | None = None
    frequency: Frequency | None = None

    def applied_to(self, current: TopicChoice) -> TopicChoice:
        """The lead's choice with this edit made."""
        return TopicChoice(
            current.subscribed if self.subscribed is None else self.subscribed,
            current.frequency if self.frequency is None else self.frequency,
        )


SHOWN_ON, SHOWN_OFF = "on", "off"


def edits_from_form(
    subscribed: Sequence[str],
    frequencies: Mapping[str, str],
    shown: Mapping[str, str],
    shown_frequencies: Mapping[str, str],
) -> dict[str, TopicEdit]:
    """What the person changed on the form: per topic, the fields whose submitted value
    differs from the one the page showed (`shown`: `on`/`off` per topic, and
    `shown_frequencies`, from the page's hidden fields). A page loaded before a one-click
    unsubscribe (or an old forwarded one) still shows the topic ticked; saving it leaves
    the topic alone unless the box was changed. A topic without a shown state is left as
    it is. Unknown topics and values are refused, naming the field."""
    submitted = choices_from_form(subscribed, frequencies)
    for name, value in shown.items():
        if name not in TOPIC_NAMES or value not in (SHOWN_ON, SHOWN_OFF):
            raise InvalidParameter(("body", f"shown-topic-{name[:64]}"), "not what this form sends")
    edits = {}
    for name in sorted(TOPIC_NAMES):
        was_on = shown.get(name)
        ticked = submitted[name].subscribed
        switched = was_on is not None and ticked != (was_on == SHOWN_ON)
        frequency = None
        if name in frequencies and name in shown_frequencies:
            try:
                was = Frequency(shown_frequencies[name])
            except ValueError:
                raise InvalidParameter(
                    ("body", f"shown-frequency-{name}"), "not what this form sends"
                ) from None
            if submitted[name].frequency != was:
                frequency = submitted[name].frequency
        if switched or frequency is not None:
            edits[name] = TopicEdit(ticked if switched else None, frequency)
    return edits


async def save_edits(
    sessions: async_sessionmaker,
    lead_id: str,
    edits: Mapping[str, TopicEdit],
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool | None:
    """Apply the lead's own edits to its current choices (under the lead's lock), one
    consent record per change, in one transaction. True if anything changed; None: no
    such lead."""
    return await _change(
        sessions,
        lead_id,
        lambda current: {topic: edit.applied_to(current[topic]) for topic, edit in edits.items()},
        source=source,
        ip=ip,
        user_agent=user_agent,
    )


async def save_choices(
    sessions: async_sessionmaker,
    lead_id: str,
    wanted: Mapping[str, TopicChoice],
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool | None:
    """Apply the lead's own choices (topics not in `wanted` keep theirs), one consent
    record per change, in one transaction. True if anything changed; None: no such lead.
    Repeating it changes nothing."""
    return await _change(
        sessions, lead_id, lambda _: wanted, source=source, ip=ip, user_agent=user_agent
    )


async def _change(
    sessions: async_sessionmaker,
    lead_id: str,
    decide: Callable[[dict[str, TopicChoice]], Mapping[str, TopicChoice]],
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool | None:
    """Apply what `decide` wants given the lead's current choices (read under the lead's
    lock), with the evidence."""
    at = utcnow()
    async with sessions() as session:
        # Locked: two submissions at once apply one after the other.
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None or lead.erased_at is not None or lead.email is None:
            return None
        current = await choices_of(session, lead_id)
        changed = False
        for topic, choice in sorted(decide(current).items()):
            actions = changes(current[topic], choice)
            if not actions:
                continue
            changed = True
            await set_choice(session, lead_id, topic, choice, source=source, at=at)
            for action in actions:
                session.add(
                    ConsentRecord(
                        lead_id=lead_id,
                        action=action.value,
                        topic=topic,
                        at=at,
                        # The frequency record says which one was chosen.
                        source=f"{source}: {choice.frequency.value}"
                        if action is TopicAction.FREQUENCY
                        else source,
                        ip=ip,
                        user_agent=(user_agent or "")[:300] or None,
                    )
                )
        await session.commit()
    return changed


async def unsubscribe_topic(
    sessions: async_sessionmaker,
    lead_id: str,
    topic: str,
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """The lead leaves one topic (a message's one-click unsubscribe); its frequency
    choice is kept for if it comes back. True if the lead exists. Idempotent. A topic
    that is no longer declared changes nothing here: the caller unsubscribes the lead
    from everything instead (`is_topic`)."""
    if not is_topic(topic):
        return await preferences_of(sessions, lead_id) is not None
    done = await _change(
        sessions,
        lead_id,
        lambda current: {topic: TopicChoice(False, current[topic].frequency)},
        source=source,
        ip=ip,
        user_agent=user_agent,
    )
    return done is not None


def is_topic(topic: str) -> bool:
    """Whether `topic` is a declared topic. An unsubscribe link names the topic its message
    had when it was sent: a topic removed or renamed since is not one."""
    return topic in TOPIC_NAMES
