"""How workflows call effects: retried for as long as it takes, each attempt bounded."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Effects retry for as long as it takes (an SMTP outage must not lose a send); each
# attempt is bounded so that a hung connection is retried rather than waited on forever.
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
EFFECT_ATTEMPT_TIMEOUT = timedelta(seconds=60)
