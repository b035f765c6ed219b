"""When a marketing email may go out: quiet hours and weekdays in the lead's timezone, and
a frequency cap across all journeys. Pure: the email activity asks `next_allowed_moment`
and defers the send (never drops it) when the answer is later than now.

Answers and follow-ups (docs/journeys.md): an *answer* — the email that replies to the
lead's own action a moment ago (the first email after the journey's entry, with no wait
before it; see `answer_steps`) — goes out at once: neither quiet hours nor the cap hold it
(it still counts towards the cap for the emails after it). Every other journey email is a
scheduled follow-up and waits for the window and the cap. Consent, suppression and the
double opt-in hold both alike (the email activity checks those first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import AnyStep, JourneyDefinition, SendEmail, successors, waits
from journeys.timezones import lead_zone


class SendPolicy(BaseModel):
    """Quiet hours (`quiet_from` to `quiet_until`, local hours; None: none), allowed weekdays
    (0 = Monday) and at most `cap` marketing emails per `cap_period` (None: no cap). A lead
    without a usable timezone, in a country of several zones or none, is judged in
    `default_timezone`."""

    model_config = ConfigDict(frozen=True)

    quiet_from: int | None = Field(default=21, ge=0, le=23)
    quiet_until: int | None = Field(default=8, ge=0, le=23)
    weekdays: frozenset[int] = frozenset(range(7))
    cap: int | None = Field(default=3, ge=1)
    cap_period: timedelta = timedelta(days=7)
    default_timezone: str = "UTC"


def _quiet(local: datetime, policy: SendPolicy) -> bool:
    start, end = policy.quiet_from, policy.quiet_until
    if start is None or end is None or start == end:
        return False
    hour = local.hour
    return (start <= hour or hour < end) if start > end else (start <= hour < end)


def _in_window(moment: datetime, zone: ZoneInfo, policy: SendPolicy) -> bool:
    local = moment.astimezone(zone)
    return local.weekday() in policy.weekdays and not _quiet(local, policy)


def _next_window(moment: datetime, zone: ZoneInfo, policy: SendPolicy) -> datetime:
    if _in_window(moment, zone, policy) or not policy.weekdays:
        return moment
    local = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 8):
        local += timedelta(hours=1)
        if _in_window(local, zone, policy):
            return local.astimezone(moment.tzinfo)
    return moment  # pragma: no cover - a policy with allowed days always has an hour


def in_window(
    moment: datetime, timezone: str | None, policy: SendPolicy, *, country: str | None = None
) -> bool:
    """Whether `moment` is outside quiet hours on an allowed weekday, in the lead's zone
    (its `timezone`, else its country's, else the policy's default)."""
    return _in_window(moment, lead_zone(timezone, country, policy.default_timezone), policy)


def next_window(
    moment: datetime, timezone: str | None, policy: SendPolicy, *, country: str | None = None
) -> datetime:
    """The first moment at or after `moment` inside the send window (hour steps, then the
    exact hour start)."""
    return _next_window(moment, lead_zone(timezone, country, policy.default_timezone), policy)


def next_allowed_moment(
    now: datetime,
    timezone: str | None,
    sent: Sequence[datetime],
    policy: SendPolicy,
    *,
    country: str | None = None,
    answer: bool = False,
) -> datetime:
    """The earliest moment from `now` on that respects both the window and the cap, given
    the moments marketing emails were sent to this lead (`sent`). An answer goes `now`."""
    if answer:
        return now
    zone = lead_zone(timezone, country, policy.default_timezone)
    moment = now
    for _ in range((policy.cap or 1) + 2):
        moment = _next_window(moment, zone, policy)
        if policy.cap is None:
            return moment
        recent = sorted(s for s in sent if moment - policy.cap_period < s <= moment)
        if len(recent) < policy.cap:
            return moment
        # Wait until enough of them age out of the period.
        moment = recent[len(recent) - policy.cap] + policy.cap_period + timedelta(seconds=1)
    return _next_window(moment, zone, policy)


# --- answers ----------------------------------------------------------------------------


def answer_steps(definition: JourneyDefinition) -> frozenset[str]:
    """The ids of the journey's email steps that are answers (pure, from the definition).

    `SendEmail(timing="answer")` always is, `timing="scheduled"` never is. `timing="auto"`
    (the default) is an answer when it is the first email reached from the entry with no
    wait before it — entry → send, possibly through branches, `set` steps and handovers —
    on every path that reaches it: a step also reachable after a wait or an earlier email
    (a loop back to the entry, a branch that joins a later path) is a follow-up.
    """
    by_id = {step.id: step for step in definition.steps}

    def reach(starts: Sequence[str], *, stop_at_waits_and_emails: bool) -> set[str]:
        """Steps reachable from `starts`; stopping at (but including) steps that wait or
        send, when asked."""
        seen: set[str] = set()
        frontier = list(starts)
        while frontier:
            current = frontier.pop()
            if current in seen or current not in by_id:
                continue
            seen.add(current)
            if not (stop_at_waits_and_emails and _waits_or_sends(by_id[current])):
                frontier.extend(successors(by_id[current]))
        return seen

    prefix = reach([definition.entry], stop_at_waits_and_emails=True)
    first_emails = {i for i in prefix if isinstance(by_id[i], SendEmail)}
    after_wait_or_email = reach(
        [t for s in by_id.values() if _waits_or_sends(s) for t in successors(s)],
        stop_at_waits_and_emails=False,
    )
    auto = first_emails - after_wait_or_email
    return frozenset(
        step.id
        for step in definition.steps
        if isinstance(step, SendEmail)
        and (step.timing == "answer" or (step.timing == "auto" and step.id in auto))
    )


def _waits_or_sends(step: AnyStep) -> bool:
    return waits(step) or isinstance(step, SendEmail)
