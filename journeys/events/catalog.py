"""Nurture's custom event types, declared as code: each is a name, a description and a
pydantic model of its properties, registered with `declare_event_type`.

Custom types validate strictly (`extra="forbid"`): a misspelt property is refused by name
instead of being stored where no rule will ever read it. To add one, write its properties
model here and declare it (docs/events-draft.md); never delete or rename a declared type.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from journeys.event_types import declare_event_type


class CustomProperties(BaseModel):
    """Base of custom event types' properties: frozen, unknown properties refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrialStarted(CustomProperties):
    """`plan` (the plan on trial) and, when known, the day the trial ends."""

    plan: str = Field(min_length=1, max_length=100)
    trial_ends_at: date | None = None


class FormStarted(CustomProperties):
    """`form`: the name of the form the lead began to fill in."""

    form: str = Field(min_length=1, max_length=200)


class CartAbandoned(CustomProperties):
    """`cart_value` (not negative) in `currency` (an ISO 4217 code such as EUR)."""

    cart_value: float = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")

    @field_validator("currency")
    @classmethod
    def _upper_case(cls, value: str) -> str:
        return value.upper()


class RenewalDue(CustomProperties):
    """`renewal_date`: the day the customer's contract renews."""

    renewal_date: date


class EmailReply(CustomProperties):
    """A person answered one of our emails: which outbox row (the reply came to its return
    path); the words stay in the inbound message, not in the event."""

    outbox_id: int | None = Field(default=None, ge=1)


TRIAL_STARTED = declare_event_type(
    "trial_started", TrialStarted, "The lead started a product trial."
)
FORM_STARTED = declare_event_type(
    "form_started",
    FormStarted,
    "The lead began to fill in a named form (the built-in form_start names no form).",
)
CART_ABANDONED = declare_event_type(
    "cart_abandoned", CartAbandoned, "The lead left a filled cart without checking out."
)
RENEWAL_DUE = declare_event_type(
    "renewal_due", RenewalDue, "A customer's contract comes up for renewal."
)
EMAIL_REPLY = declare_event_type(
    "email_reply",
    EmailReply,
    "The lead answered an email (the inbound listener saw a human reply): engagement, an "
    "exit goal or a segment condition like any other event.",
)
