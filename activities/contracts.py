"""What workflows and activities exchange: one typed reference per activity (`ActivityRef`:
its name, the request model it takes, the type its result decodes into) next to its
pydantic payloads.

Workflows call an activity through its reference (`workflows.activity_calls.call`), so the
type checker rejects a wrong request or a wrong use of the result; the implementation
registers under the same name (`@activity.defn(name=SEND_EMAIL.name)`). The names are in
the histories of running workflows: never change one.

Pure data, no I/O: workflows import this module. Payloads carry ids, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.consent import ConsentStatus
from journeys.dsl import Branch, ConditionOutcome, LifecycleStage, OwnerNotification, Wait
from journeys.lifecycle import FeedbackOutcome
from journeys.scoring import LifecyclePolicy

# A signal payload, so it lives with the workflow contracts; imported from here before.

RequestT = TypeVar("RequestT", bound=BaseModel)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class ActivityRef(Generic[RequestT, ResultT]):
    """An activity as workflows call it: `name` (recorded in history), the one request
    model it takes and the type its result decodes into."""

    name: str
    request_type: type[RequestT]
    result_type: type[ResultT]


def _optional(result_type: type[ResultT]) -> type[ResultT | None]:
    # `str | None` is a union, not a class, though the data converter decodes into it
    # all the same; `type[...]` can't say so.
    return cast("type[ResultT | None]", result_type | None)


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


def _from_bare_id(field: str, data: Any) -> Any:
    """A request that replaced a bare id: an attempt scheduled by an older workflow, which
    sent the id alone, may run on a worker that expects the model."""
    return {field: data} if isinstance(data, str) else data


class SendEmailRequest(_Contract):
    """Send email template `template` to lead `lead_id`, once per `idempotency_key`."""

    lead_id: str
    workflow_id: str
    step_id: str
    template: str
    idempotency_key: str = Field(max_length=300)
    # The workflow's time: send windows and frequency caps are judged at it.
    now: datetime | None = None
    # An answer to the lead's own action (journeys.send_policy.answer_steps): quiet hours
    # and the frequency cap don't hold it; consent and suppression do. False (the default,
    # and what a request from an older workflow means): a scheduled follow-up.
    answer: bool = False


class SendEmailResult(_Contract):
    """What became of a send request; a retry of a sent request returns the first result.
    `deferred`: not now (quiet hours, frequency cap, consent not yet confirmed); ask again
    at `retry_at` with the same key."""

    status: Literal["sent", "skipped", "deferred"]
    message_id: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None


SEND_EMAIL = ActivityRef("send_email", SendEmailRequest, SendEmailResult)


class ChooseBranchRequest(_Contract):
    """Evaluate `branch` against the lead's facts (read by the activity, never returned)."""

    lead_id: str
    branch: Branch
    # The workflow's time (scores decay); None: the activity's clock.
    now: datetime | None = None


class CheckConditionsRequest(_Contract):
    """Which of a wait's condition outcomes holds for the lead now (None: none)."""

    lead_id: str
    conditions: tuple[ConditionOutcome, ...]
    now: datetime | None = None


class ResolveWaitRequest(_Contract):
    """When a lead-dependent wait ends: a send window in the lead's timezone, or a moment
    read from a lead property (e.g. a webinar's start), given the workflow's `now`."""

    lead_id: str
    step: Wait
    now: datetime


class UpdateLeadRequest(_Contract):
    """Apply a `set` step: score points, a stage move, properties. Once per key."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    add_score: int | None = None
    stage: LifecycleStage | None = None
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    cause: str
    actor: str


class UpdateLeadResult(_Contract):
    previous_stage: LifecycleStage
    stage: LifecycleStage
    previous_score: int
    score: int


# The chosen step's id; a lead's facts never leave the activity.
CHOOSE_BRANCH = ActivityRef("choose_branch", ChooseBranchRequest, str)
# The step of the first condition outcome that holds, or None.
CHECK_CONDITIONS = ActivityRef("check_conditions", CheckConditionsRequest, _optional(str))
RESOLVE_WAIT = ActivityRef("resolve_wait", ResolveWaitRequest, datetime)
UPDATE_LEAD = ActivityRef("update_lead", UpdateLeadRequest, UpdateLeadResult)


class HandOverRequest(_Contract):
    """Hand the lead to sales, once per `idempotency_key` (one per MQL cycle)."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    reason: str


class HandOverResult(_Contract):
    handover_id: int
    created: bool


# Journeys started before the lead workflow existed hand over directly.
HAND_OVER = ActivityRef("hand_over", HandOverRequest, HandOverResult)


# --- the lead workflow's activities (scoring, lifecycle, CRM, notifications) ---------------


class ScoreLeadRequest(_Contract):
    """Rescore the lead at `now` with its persona's model; store the score if it changed."""

    lead_id: str
    now: datetime
    cause: str = Field(max_length=200)


class ScoreLeadResult(_Contract):
    """The lead's score and lifecycle facts, as the lead workflow needs them. Numbers and
    ids only: the explanation (which names fit data) stays in the database."""

    fit: int
    behaviour: int
    total: int
    qualifies: bool
    stage: LifecycleStage
    owner: str | None
    mql_cycles: int
    rejections: int
    mql_blocked_until: datetime | None
    policy: LifecyclePolicy
    # When the score will change without new events (decay, inactivity); None: it won't.
    rescore_at: datetime | None
    account_id: str | None = None
    account_qualified: bool = False
    erased: bool = False
    consent_status: ConsentStatus = ConsentStatus.CONFIRMED


SCORE_LEAD = ActivityRef("score_lead", ScoreLeadRequest, ScoreLeadResult)


class ChangeStageRequest(_Contract):
    """Move the lead to `stage` once per key, record the transition (and the feedback that
    caused it), and tell the lead's journeys."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    stage: LifecycleStage
    cause: str = Field(max_length=200)
    actor: str = Field(max_length=200)
    new_mql_cycle: bool = False
    # Sales feedback: recorded with the transition; a rejection counts and may hold a cool-down.
    feedback_outcome: FeedbackOutcome | None = None
    feedback_note_id: int | None = None  # the reason's text, in `feedback_notes`
    feedback_reason: str | None = Field(default=None, max_length=500)  # older histories only
    feedback_rep: str | None = Field(default=None, max_length=64)
    counts_as_rejection: bool = False
    mql_blocked_until: datetime | None = None
    behaviour_carryover: float | None = None
    at: datetime


class ChangeStageResult(_Contract):
    previous_stage: LifecycleStage
    stage: LifecycleStage
    mql_cycles: int
    rejections: int


CHANGE_STAGE = ActivityRef("change_stage", ChangeStageRequest, ChangeStageResult)


class HandOverLeadRequest(_Contract):
    """Route the lead and hand it to the CRM, once per key (one per lead and MQL cycle).
    With `reassign_from`, route it to someone else (the SLA lapsed)."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    cycle: int
    reason: str = Field(max_length=200)
    reassign_from: str | None = None


class HandOverLeadResult(_Contract):
    handover_id: int
    owner: str
    rule: str
    created: bool  # this call delivered it (not a concurrent or an earlier attempt)


HAND_OVER_LEAD = ActivityRef("hand_over_lead", HandOverLeadRequest, HandOverLeadResult)


class BecomeMqlRequest(_Contract):
    """The MQL moment in one activity: the stage change, then the handover, each once per
    its own key (a retry repeats neither)."""

    stage: ChangeStageRequest
    handover: HandOverLeadRequest


class BecomeMqlResult(_Contract):
    stage: ChangeStageResult
    handover: HandOverLeadResult


BECOME_MQL = ActivityRef("become_mql", BecomeMqlRequest, BecomeMqlResult)


class HandOverAccountRequest(_Contract):
    """Route a newly account-qualified account to its owner, once per account."""

    account_id: str
    lead_id: str
    idempotency_key: str = Field(max_length=300)


class HandOverAccountResult(_Contract):
    handover_id: int
    owner: str
    created: bool  # this call delivered it (not a concurrent or an earlier attempt)


HAND_OVER_ACCOUNT = ActivityRef("hand_over_account", HandOverAccountRequest, HandOverAccountResult)


# The notifications a sales rep gets (templates under templates/notifications).


class NotifyOwnerRequest(_Contract):
    """Email a sales rep about a lead (template under templates/notifications), once per key."""

    lead_id: str
    rep_id: str | None = None  # None: the lead's owner, read when the email goes out
    template: OwnerNotification
    idempotency_key: str = Field(max_length=300)


NOTIFY_OWNER = ActivityRef("notify_owner", NotifyOwnerRequest, type(None))


class EnrollInJourneyRequest(_Contract):
    """Start the lead in journey `journey` (as its re-entry policy allows)."""

    lead_id: str
    journey: str


ENROLL_IN_JOURNEY = ActivityRef("enroll_in_journey", EnrollInJourneyRequest, type(None))


class RequestHandoverRequest(_Contract):
    """A journey's `hand_over` step: ask the lead's lifecycle to make it an MQL."""

    lead_id: str
    reason: str = Field(max_length=200)
    journey: str


REQUEST_HANDOVER = ActivityRef("request_handover", RequestHandoverRequest, type(None))


class ConfirmationRequest(_Contract):
    """Send the double opt-in confirmation (or its reminder) to a pending lead, once per key."""

    lead_id: str
    idempotency_key: str = Field(max_length=300)
    reminder: bool = False


SEND_CONFIRMATION = ActivityRef("send_confirmation", ConfirmationRequest, SendEmailResult)


class ExpireConsentRequest(_Contract):
    """Expire the lead's double opt-in if it is still pending. The result is the lead's
    consent status after (a `ConsentStatus` value)."""

    lead_id: str

    @model_validator(mode="before")
    @classmethod
    def _bare_lead_id(cls, data: Any) -> Any:
        return _from_bare_id("lead_id", data)


EXPIRE_CONSENT = ActivityRef("expire_consent", ExpireConsentRequest, str)


class EnrollJobChunkRequest(_Contract):
    """Enroll one chunk of a bulk enrollment job (its rows are staged in the database)."""

    job_id: str
    chunk: int


class EnrollJobChunkResult(_Contract):
    rows: int
    enrolled: int
    already_enrolled: int
    failed: int


ENROLL_JOB_CHUNK = ActivityRef("enroll_job_chunk", EnrollJobChunkRequest, EnrollJobChunkResult)


class StoreJobLeadsRequest(_Contract):
    """Write the new leads of chunks `first` … `last` (inclusive) of a bulk enrollment job
    in bulk, before any journey starts (the job's store phase)."""

    job_id: str
    first: int = Field(ge=0)
    last: int = Field(ge=0)


class StoreJobLeadsResult(_Contract):
    rows: int  # staged rows of the chunks that no earlier attempt stored
    stored: int  # of them, written in bulk here (the rest are written one by one later)


STORE_JOB_LEADS = ActivityRef("store_job_leads", StoreJobLeadsRequest, StoreJobLeadsResult)


class FinishEnrollmentJobRequest(_Contract):
    """Mark the bulk enrollment job done (once)."""

    job_id: str

    @model_validator(mode="before")
    @classmethod
    def _bare_job_id(cls, data: Any) -> Any:
        return _from_bare_id("job_id", data)


FINISH_ENROLLMENT_JOB = ActivityRef("finish_enrollment_job", FinishEnrollmentJobRequest, type(None))


class StageReachedRef(_Contract):
    """The lead's stage became `stage`; `key` names the occurrence (e.g. `mql:<lead>:3`)."""

    stage: LifecycleStage
    key: str = Field(max_length=200)


class SegmentsAndTriggersRequest(_Contract):
    """Re-evaluate the lead's segments (memberships kept in the database) and fire the
    triggers of what happened: the events named, the segment entries found, the stages
    reached. Ids only; the activity reads the rest."""

    lead_id: str
    now: datetime
    cause: str = Field(max_length=200)
    event_ids: tuple[str, ...] = ()
    stages: tuple[StageReachedRef, ...] = ()


class SegmentsAndTriggersResult(_Contract):
    """Segments entered and left, journeys started by triggers, and the next moment a
    time-based segment condition can flip (None: none can)."""

    entered: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    recheck_at: datetime | None = None
    erased: bool = False


SEGMENTS_AND_TRIGGERS = ActivityRef(
    "segments_and_triggers", SegmentsAndTriggersRequest, SegmentsAndTriggersResult
)


class BackfillBatchRequest(_Contract):
    """Evaluate `segment` for the next `limit` leads after `after` (by id) and write their
    memberships."""

    segment: str
    after: str = ""
    limit: int = Field(default=500, ge=1, le=5000)
    now: datetime


class BackfillBatchResult(_Contract):
    """How many leads the batch evaluated, how many are members, and where to go on
    (None: no lead left)."""

    evaluated: int
    members: int
    entered: int
    left: int
    last: str | None


BACKFILL_SEGMENT_BATCH = ActivityRef(
    "backfill_segment_batch", BackfillBatchRequest, BackfillBatchResult
)


class EnrollSegmentPageRequest(_Contract):
    """Enroll the next `limit` members of `segment` (after lead id `after`) into `journey`,
    once per `occurrence` (the scheduled run)."""

    journey: str
    segment: str
    occurrence: str = Field(max_length=200)
    after: str = ""
    limit: int = Field(default=200, ge=1, le=2000)


class EnrollSegmentPageResult(_Contract):
    members: int
    enrolled: int
    last: str | None


ENROLL_SEGMENT_PAGE = ActivityRef(
    "enroll_segment_page", EnrollSegmentPageRequest, EnrollSegmentPageResult
)


class JourneyFinishedRequest(_Contract):
    """The lead's run of `journey` (workflow `workflow_id`) ended at `at`."""

    lead_id: str
    journey: str
    workflow_id: str
    at: datetime


JOURNEY_FINISHED = ActivityRef("journey_finished", JourneyFinishedRequest, type(None))


class ProcessInboundRequest(_Contract):
    """Classify and act on inbound message `inbound_id` (stored by the listener), once."""

    inbound_id: int


class ProcessInboundResult(_Contract):
    """What the message was and what was done about it."""

    kind: str
    action: str


PROCESS_INBOUND = ActivityRef("process_inbound", ProcessInboundRequest, ProcessInboundResult)


# --- broadcasts (journeys/broadcasts.py) -------------------------------------------------


class SnapshotAudienceRequest(_Contract):
    """Fix broadcast `broadcast_id`'s audience as of `now` (once: a retry finds it fixed)."""

    broadcast_id: str
    now: datetime


class SnapshotAudienceResult(_Contract):
    audience: int
    sample: int  # recipients of the A/B variants (0: no test)


SNAPSHOT_AUDIENCE = ActivityRef(
    "snapshot_broadcast_audience", SnapshotAudienceRequest, SnapshotAudienceResult
)


class SendBroadcastBatchRequest(_Contract):
    """Send up to `limit` due messages of the broadcast: the A/B sample's (`sample`) or the
    rest's, the rest with subject variant `winner` (None: the template's subject)."""

    broadcast_id: str
    limit: int = Field(ge=1)
    rate_per_second: float | None = None
    sample: bool = False
    winner: int | None = None
    # The recipients whose position modulo `partitions` is `partition`: partitions run
    # side by side (on several workers), each its own sequence of batches.
    partition: int = Field(default=0, ge=0)
    partitions: int = Field(default=1, ge=1)


class SendBroadcastBatchResult(_Contract):
    """What the batch did; `remaining` are due now still, `next_due_at` is when the next
    recipient not yet due (a local send time, a retry) is due (None: none left)."""

    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    remaining: int = 0
    next_due_at: datetime | None = None


SEND_BROADCAST_BATCH = ActivityRef(
    "send_broadcast_batch", SendBroadcastBatchRequest, SendBroadcastBatchResult
)


class PickWinnerRequest(_Contract):
    broadcast_id: str


class PickWinnerResult(_Contract):
    winner: int
    significant: bool
    verdict: str


PICK_WINNER = ActivityRef("pick_broadcast_winner", PickWinnerRequest, PickWinnerResult)


class RecordBroadcastStatusRequest(_Contract):
    broadcast_id: str
    status: str  # journeys.broadcasts.BroadcastStatus
    now: datetime


RECORD_BROADCAST_STATUS = ActivityRef(
    "record_broadcast_status", RecordBroadcastStatusRequest, type(None)
)
