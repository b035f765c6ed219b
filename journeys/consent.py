"""Double opt-in timing (pure constants the lead workflow schedules with)."""

from __future__ import annotations

from datetime import timedelta

# A pending lead is reminded once, this long after the confirmation email …
DOI_REMINDER_AFTER = timedelta(days=2)
# … and its request expires this long after it: no marketing email until it opts in again.
DOI_EXPIRES_AFTER = timedelta(days=7)
