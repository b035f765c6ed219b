"""The consent rules, pure: what a claim of consent does to a lead, suppressed or not."""

from __future__ import annotations

import pytest

from journeys.consent import (
    Claim,
    ClaimSource,
    ConsentAction,
    ConsentStatus,
    SuppressionReason,
    address_hash,
    decide,
)

CLAIMED_CONFIRMED = Claim(source=ClaimSource.INTEGRATION, given=True, confirmed=True)
NO_CONSENT = Claim(source=ClaimSource.INTEGRATION, given=False)
OWN_FORM_FILL = Claim(source=ClaimSource.OWN_FORM_FILL, given=True)
SECRET = "s" * 32


@pytest.mark.parametrize("reason", list(SuppressionReason))
def test_an_integration_claiming_confirmed_consent_leaves_a_suppressed_lead_suppressed(
    reason: SuppressionReason,
) -> None:
    decision = decide(ConsentStatus(reason.value), None, CLAIMED_CONFIRMED)

    assert decision.status == ConsentStatus(reason.value)
    assert decision.record is ConsentAction.CLAIM_REFUSED
    assert not decision.start_double_opt_in
    assert decision.suppressed is reason


def test_an_enrollment_without_consent_starts_no_double_opt_in_for_an_unsubscribed_lead() -> None:
    decision = decide(ConsentStatus.UNSUBSCRIBED, SuppressionReason.UNSUBSCRIBED, NO_CONSENT)

    assert (decision.status, decision.record, decision.start_double_opt_in) == (
        ConsentStatus.UNSUBSCRIBED,
        None,
        False,
    )


def test_a_new_lead_for_an_erased_suppressed_address_takes_the_suppression() -> None:
    decision = decide(None, SuppressionReason.UNSUBSCRIBED, CLAIMED_CONFIRMED)

    assert decision.status is ConsentStatus.UNSUBSCRIBED
    assert decision.record is ConsentAction.CLAIM_REFUSED
    assert decision.suppressed is SuppressionReason.UNSUBSCRIBED


def test_the_leads_own_form_fill_starts_a_double_opt_in_without_lifting_the_suppression() -> None:
    decision = decide(ConsentStatus.UNSUBSCRIBED, SuppressionReason.UNSUBSCRIBED, OWN_FORM_FILL)

    assert decision.status is ConsentStatus.PENDING
    assert decision.record is ConsentAction.RESUBSCRIBE_REQUESTED
    assert decision.start_double_opt_in
    assert decision.suppressed is SuppressionReason.UNSUBSCRIBED


def test_an_integration_claim_does_not_cancel_a_resubscription_the_lead_started() -> None:
    decision = decide(ConsentStatus.PENDING, SuppressionReason.UNSUBSCRIBED, CLAIMED_CONFIRMED)

    assert decision.status is ConsentStatus.PENDING
    assert decision.record is ConsentAction.CLAIM_REFUSED
    assert not decision.start_double_opt_in


def test_a_claim_of_confirmed_consent_confirms_a_lead_that_never_opted_out() -> None:
    decision = decide(None, None, CLAIMED_CONFIRMED)

    assert (decision.status, decision.record, decision.suppressed) == (
        ConsentStatus.CONFIRMED,
        ConsentAction.IMPORTED,
        None,
    )


def test_a_confirmed_lead_stays_confirmed_without_a_new_record() -> None:
    decision = decide(ConsentStatus.CONFIRMED, None, NO_CONSENT)

    assert (decision.status, decision.record) == (ConsentStatus.CONFIRMED, None)


def test_a_lead_without_a_claim_of_confirmation_gets_a_double_opt_in() -> None:
    decision = decide(None, None, Claim(source=ClaimSource.INTEGRATION, given=True))

    assert decision.status is ConsentStatus.PENDING and decision.start_double_opt_in


def test_the_address_hash_ignores_case_and_surrounding_space_but_not_the_address() -> None:
    assert address_hash(SECRET, " Ada@Example.COM ") == address_hash(SECRET, "ada@example.com")
    assert address_hash(SECRET, "ada@example.com") != address_hash(SECRET, "ada@example.org")


def test_the_address_hash_is_one_for_both_forms_of_an_internationalised_domain() -> None:
    assert address_hash(SECRET, "ada@bücher.example") == address_hash(
        SECRET, "ada@xn--bcher-kva.example"
    )


def test_the_address_hash_depends_on_the_secret_and_holds_no_trace_of_the_address() -> None:
    digest = address_hash(SECRET, "ada@example.com")

    assert digest != address_hash("t" * 32, "ada@example.com")
    assert len(digest) == 64 and "ada" not in digest
