"""Custom search attributes the journey workflow sets, so the Temporal UI can list leads by them.

The worker registers any that are missing at start-up (see starter.dev.provisioning.temporal).
"""

from temporalio.common import SearchAttributeKey

JOURNEY = SearchAttributeKey.for_keyword("NurtureJourney")
JOURNEY_VERSION = SearchAttributeKey.for_keyword("NurtureJourneyVersion")
STEP = SearchAttributeKey.for_keyword("NurtureStep")
# Set by the lead workflow: e.g. `NurtureStage = 'mql' AND NurtureScore > 80` in the UI.
STAGE = SearchAttributeKey.for_keyword("NurtureStage")
SCORE = SearchAttributeKey.for_int("NurtureScore")
OWNER = SearchAttributeKey.for_keyword("NurtureOwner")

ALL = (JOURNEY, JOURNEY_VERSION, STEP, STAGE, SCORE, OWNER)
