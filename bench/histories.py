"""`python -m bench.histories`: what a journey and a lead cost in Temporal history.

Reads the recorded histories of real runs in tests/histories/ (what tests/test_replay.py
replays; tests/record_histories.py says what each run is) and prints, per history: the
workflow type, its events, its size as Temporal counts it (the serialized protobuf events),
the bytes of its payloads (inputs, results, signal arguments), and the activities, signals,
timers and emails in it. No server is needed; nothing is written. docs/scaling.md uses it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"


@dataclass(frozen=True)
class HistoryFigures:
    """One recorded run, counted."""

    name: str
    workflow_type: str
    events: int
    bytes: int  # sum of the serialized events: what the server's history size counts
    payload_bytes: int  # the payloads' metadata and data, part of `bytes`
    activities: dict[str, int]
    signals: int
    timers: int
    emails: int
    days: float  # first event to last, on the recording's (skipped) clock
    ended_by: str


def _payload_bytes(message: Message) -> int:
    """Bytes of every Payload anywhere inside `message`."""
    if isinstance(message, Payload):
        return message.ByteSize()
    total = 0
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if isinstance(value, Message):
            total += _payload_bytes(value)
        else:  # a repeated field, or a map (whose values are the messages)
            items = value.values() if descriptor.message_type.GetOptions().map_entry else value
            total += sum(_payload_bytes(item) for item in items if isinstance(item, Message))
    return total


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def measure(path: Path) -> HistoryFigures:
    """Count one exported history (the JSON `temporal workflow show -o json` writes)."""
    raw = json.loads(path.read_text())
    history = WorkflowHistory.from_json(path.stem, raw)
    events = list(history.events)
    kinds = Counter(event.event_type for event in events)
    activities = Counter(
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    started = events[0].workflow_execution_started_event_attributes
    times = [_when(event["eventTime"]) for event in raw["events"]]
    return HistoryFigures(
        name=path.stem,
        workflow_type=started.workflow_type.name,
        events=len(events),
        bytes=sum(event.ByteSize() for event in events),
        payload_bytes=sum(_payload_bytes(event) for event in events),
        activities=dict(sorted(activities.items())),
        signals=kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED],
        timers=kinds[EventType.EVENT_TYPE_TIMER_STARTED],
        emails=activities.get("send_email", 0),
        days=round((times[-1] - times[0]).total_seconds() / 86400, 2),
        ended_by=EventType.Name(events[-1].event_type).removeprefix("EVENT_TYPE_"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per history")
    args = parser.parse_args()
    figures = [measure(path) for path in sorted(HISTORIES.glob("*.json"))]
    if args.json:
        for figure in figures:
            print(json.dumps(asdict(figure)))
        return
    header = ("history", "type", "events", "bytes", "payload", "emails", "signals", "timers")
    print("{:<38} {:<16} {:>6} {:>7} {:>7} {:>6} {:>7} {:>6}  activities".format(*header))
    for f in figures:
        print(
            f"{f.name:<38} {f.workflow_type:<16} {f.events:>6} {f.bytes:>7} "
            f"{f.payload_bytes:>7} {f.emails:>6} {f.signals:>7} {f.timers:>6}  "
            + ", ".join(f"{name} {count}" for name, count in f.activities.items())
        )


if __name__ == "__main__":
    main()
