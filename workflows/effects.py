"""How workflows call effects: retried for as long as it takes, each attempt bounded."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Errors that no retry can heal: an attempt failing with one fails the effect at once
# rather than retrying for ever (activities turn the ones they expect, such as an address
# that can't be encoded, into a recorded result first).
PERMANENT_ERRORS = ["UnicodeEncodeError", "UnicodeDecodeError", "TemplateMissing"]

# Effects retry for as long as it takes (an SMTP outage must not lose a send); each
# attempt is bounded so that a hung connection is retried rather than waited on forever.
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=PERMANENT_ERRORS,
)
EFFECT_ATTEMPT_TIMEOUT = timedelta(seconds=60)
