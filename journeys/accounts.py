"""Accounts for account-based marketing: contacts grouped by company domain, scored together.

Pure logic; the scoring activity stores accounts and asks `account_qualifies`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

# Addresses at these domains say nothing about an employer: no account, and a fit penalty.
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "icloud.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "mail.com",
    "yandex.ru",
)


def email_domain(email: str | None) -> str | None:
    """The domain part of an address, lower-cased."""
    if not email or "@" not in email:
        return None
    return email.rpartition("@")[2].strip().lower() or None


def company_domain(email: str | None) -> str | None:
    """The company an address belongs to, or None for free-mail and malformed addresses."""
    domain = email_domain(email)
    if domain is None or domain in FREE_MAIL_DOMAINS:
        return None
    return domain


class AccountModel(BaseModel):
    """When an account is worth sales' attention as a whole."""

    model_config = ConfigDict(frozen=True)

    # Combined behaviour score of the account's contacts …
    threshold: int = Field(default=100, gt=0)
    # … with at least this many contacts engaged (behaviour score above zero).
    min_engaged_contacts: int = Field(default=2, ge=1)


ACCOUNT_MODEL = AccountModel()


def account_score(contact_behaviour_scores: Sequence[int]) -> int:
    """An account's score: the positive behaviour scores of its contacts, added up."""
    return sum(s for s in contact_behaviour_scores if s > 0)


def account_qualifies(contact_behaviour_scores: Sequence[int], model: AccountModel) -> bool:
    """Whether the account's combined engagement makes it account-qualified."""
    engaged = sum(1 for s in contact_behaviour_scores if s > 0)
    return (
        engaged >= model.min_engaged_contacts
        and account_score(contact_behaviour_scores) >= model.threshold
    )
