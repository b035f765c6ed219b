"""Transient bounces and deliverability status (issue 16): the pure policy first, then on
the real stack — N transient bounces suppress, and the lead view shows each status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from journeys.bounce_policy import (
    DeliverabilityStatus,
    SoftBouncePolicy,
    TransientBounce,
    deliverability_status,
    failed_messages,
    suppress_after_transient,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = SoftBouncePolicy(limit=3, window=timedelta(days=7))


def bounce(outbox_id: int, days_ago: float, action: str = "failed") -> TransientBounce:
    return TransientBounce(outbox_id, NOW - timedelta(days=days_ago), action)


def test_three_messages_bounced_within_the_window_suppress() -> None:
    reports = [bounce(1, 6), bounce(2, 3), bounce(3, 0)]

    assert suppress_after_transient(reports, NOW, POLICY)


def test_two_are_counted_but_do_not_suppress() -> None:
    assert not suppress_after_transient([bounce(1, 1), bounce(2, 0)], NOW, POLICY)


def test_reports_older_than_the_window_do_not_count() -> None:
    reports = [bounce(1, 8), bounce(2, 7.5), bounce(3, 0)]

    assert failed_messages(reports, NOW, POLICY) == 1


def test_several_reports_about_one_message_are_one_failure() -> None:
    reports = [bounce(1, 2), bounce(1, 1), bounce(1, 0)]

    assert not suppress_after_transient(reports, NOW, POLICY)


def test_a_delayed_warning_is_no_failure() -> None:
    reports = [bounce(1, 2, "delayed"), bounce(2, 1, "Delayed"), bounce(3, 0)]

    assert failed_messages(reports, NOW, POLICY) == 1


def test_the_limit_and_window_are_a_setting() -> None:
    from starter.settings import Settings

    policy = Settings(NURTURE_SOFT_BOUNCES="5/30d").soft_bounce_policy

    assert (policy.limit, policy.window) == (5, timedelta(days=30))


@pytest.mark.parametrize("value", ["0/7d", "3/0d", "3", "three/7d", "3/7"])
def test_a_malformed_soft_bounce_setting_is_refused_naming_it(value: str) -> None:
    from pydantic import ValidationError

    from starter.settings import Settings

    with pytest.raises(ValidationError, match="NURTURE_SOFT_BOUNCES"):
        Settings(NURTURE_SOFT_BOUNCES=value)


@pytest.mark.parametrize(
    ("consent", "failures", "status"),
    [
        ("confirmed", 0, DeliverabilityStatus.ACTIVE),
        ("pending", 0, DeliverabilityStatus.ACTIVE),
        ("unsubscribed", 0, DeliverabilityStatus.ACTIVE),  # reachable, just unwilling
        ("confirmed", 2, DeliverabilityStatus.SOFT_BOUNCING),
        ("bounced", 0, DeliverabilityStatus.BOUNCED),
        ("bounced", 3, DeliverabilityStatus.BOUNCED),
        ("complained", 1, DeliverabilityStatus.COMPLAINED),
    ],
)
def test_the_deliverability_status_follows_consent_and_recent_failures(
    consent: str, failures: int, status: DeliverabilityStatus
) -> None:
    assert deliverability_status(consent, failures) == status
