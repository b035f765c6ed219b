"""The typed activity references (`activities.contracts.ActivityRef`) agree with the
activities registered under their names, and the contracts still read what older workflows
put in history."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter

import activities
from activities import contracts
from activities.contracts import (
    ActivityRef,
    ExpireConsentRequest,
    FinishEnrollmentJobRequest,
)
from journeys.consent import ConsentStatus
from journeys.dsl import LifecycleStage
from workflows.contracts import (
    DoubleOptInPhase,
    JourneyState,
    LeadState,
    LeadStatus,
    SlaPhase,
)

# The names are in the histories of running workflows: a renamed activity strands them.
NAMES = {
    "send_email",
    "notify_owner",
    "send_confirmation",
    "expire_consent",
    "choose_branch",
    "check_conditions",
    "resolve_wait",
    "update_lead",
    "hand_over",
    "hand_over_lead",
    "hand_over_account",
    "become_mql",
    "score_lead",
    "change_stage",
    "enroll_in_journey",
    "request_handover",
    "store_job_leads",
    "enroll_job_chunk",
    "finish_enrollment_job",
    "segments_and_triggers",
    "backfill_segment_batch",
    "enroll_segment_page",
    "journey_finished",
    "process_inbound",
    "snapshot_broadcast_audience",
    "send_broadcast_batch",
    "pick_broadcast_winner",
    "record_broadcast_status",
}

REFS = {value.name: value for value in vars(contracts).values() if isinstance(value, ActivityRef)}


def _implementations() -> dict[str, activity._Definition]:
    """Every `@activity.defn` method of the activity classes, by activity name."""
    found: dict[str, activity._Definition] = {}
    for module_info in pkgutil.iter_modules(activities.__path__):
        module = importlib.import_module(f"activities.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for _, fn in inspect.getmembers(cls, inspect.isfunction):
                definition = activity._Definition.from_callable(fn)
                if definition is not None:
                    assert definition.name is not None, fn  # not a dynamic activity
                    assert definition.name not in found, definition.name
                    found[definition.name] = definition
    return found


def test_every_activity_has_one_reference_and_no_name_changed() -> None:
    assert set(REFS) == NAMES
    assert set(_implementations()) == NAMES


@pytest.mark.parametrize("name", sorted(NAMES))
def test_the_activity_takes_and_returns_what_its_reference_says(name: str) -> None:
    ref, implementation = REFS[name], _implementations()[name]

    assert implementation.arg_types == [ref.request_type]
    assert implementation.ret_type == ref.result_type


async def _decoded(value: object, into: Any) -> Any:
    [payload] = await pydantic_data_converter.encode([value])
    [decoded] = await pydantic_data_converter.decode([payload], [into])
    return decoded


@pytest.mark.parametrize(
    ("model", "field"),
    [(ExpireConsentRequest, "lead_id"), (FinishEnrollmentJobRequest, "job_id")],
)
async def test_a_request_that_replaced_a_bare_id_reads_the_bare_id(
    model: Callable[..., Any], field: str
) -> None:
    # An attempt scheduled by a workflow from before the model carries the id alone.
    assert await _decoded("the-id", model) == model(**{field: "the-id"})


async def test_lead_state_reads_and_writes_the_ints_and_strings_of_older_histories() -> None:
    older = {"stage": "mql", "sla_phase": 1, "consent_status": "pending", "doi_phase": 2}

    state = await _decoded(older, LeadState)

    assert (state.stage, state.sla_phase, state.consent_status, state.doi_phase) == (
        LifecycleStage.MQL,
        SlaPhase.OWNER_REMINDED,
        ConsentStatus.PENDING,
        DoubleOptInPhase.REMINDED,
    )
    written = json.loads(state.model_dump_json())
    assert {key: written[key] for key in older} == older


async def test_journey_state_reads_the_stage_as_a_string() -> None:
    state = await _decoded({"stage": "customer"}, JourneyState)

    assert state.stage is LifecycleStage.CUSTOMER
    assert json.loads(state.model_dump_json())["stage"] == "customer"


def test_the_sla_phase_in_a_status_answer_is_still_a_number() -> None:
    status = LeadStatus.model_validate(
        {
            "stage": "mql",
            "score": 0,
            "fit": 0,
            "behaviour": 0,
            "qualifies": False,
            "owner": None,
            "mql_cycles": 1,
            "rejections": 0,
            "mql_blocked_until": None,
            "mql_at": None,
            "sla_phase": 2,
            "timeline": [],
        }
    )

    assert status.sla_phase == 2 and json.loads(status.model_dump_json())["sla_phase"] == 2
