"""Committed histories of representative runs replay against today's interpreter.

A change to `workflows/journey.py` that isn't replay-safe — one that would break leads
already inside a journey — fails here. Put such changes behind `workflow.patched`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from starter.worker_wiring import workflow_runner
from workflows.journey import JourneyWorkflow
from workflows.lead import LeadWorkflow

HISTORIES = sorted(Path(__file__).with_name("histories").glob("*.json"))
PERSONAL_DATA = ("simulation.example", "Dana", "Decider", "Practitioner", "Midsize", "VP Marketing")


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 8


HISTORY_TEXTS = {path.stem: path.read_text() for path in HISTORIES}


@pytest.mark.parametrize("name", sorted(HISTORY_TEXTS))
async def test_history_replays_without_nondeterminism(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORY_TEXTS[name])
    replayer = Replayer(
        workflows=[JourneyWorkflow, LeadWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, result.replay_failure


def _payload_texts(node: object) -> list[str]:
    """Every payload's data in a history, decoded."""
    found = []
    if isinstance(node, dict):
        if "data" in node and "metadata" in node:
            found.append(base64.b64decode(node["data"]).decode(errors="replace"))
        for value in node.values():
            found.extend(_payload_texts(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_payload_texts(value))
    return found


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_history_carries_no_personal_data(path: Path) -> None:
    texts = _payload_texts(json.loads(path.read_text()))

    assert texts, "no payloads found: the check would prove nothing"
    for text in texts:
        for personal in PERSONAL_DATA:
            assert personal not in text, (personal, text[:200])
