"""Enrollment -> first email, the way a marketer experiences it: N enrollments through the
HTTP API until N welcome emails have reached the SMTP server, next to the bare baseline
doing the same work (`BareFirstEmail`: one workflow, one activity that renders the same
template and sends it over SMTP), on the same dev server, in the same run.

Per enrollment it reports what the work costs: history events of each workflow involved
(a sample), Temporal requests at the frontend by operation (which the API makes: starts
and signal-with-starts; the rest are the workers' polls and responses) and persistence
requests (from the dev server's Prometheus metrics), database transactions (PostgreSQL's
`pg_stat_database`), and CPU milliseconds by process.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text

from bench.parallel import in_parallel
from workflows.contracts import lead_workflow_id

if TYPE_CHECKING:
    from bench.run import Stack

_METRIC = re.compile(r"^(service_requests|persistence_requests)\{([^}]*)\} ([0-9.e+]+)$")
_OPERATION = re.compile(r'operation="([^"]+)"')
SAMPLED_HISTORIES = 20


async def temporal_requests(url: str) -> Counter[str]:
    """The dev server's request counters so far: `frontend:<operation>` for requests from
    clients (API, workers), `persistence:<operation>` for its writes and reads."""
    async with httpx.AsyncClient(timeout=30) as http:
        body = (await http.get(url)).text
    counts: Counter[str] = Counter()
    for line in body.splitlines():
        found = _METRIC.match(line)
        if not found:
            continue
        name, labels, value = found.groups()
        operation = _OPERATION.search(labels)
        if operation is None:
            continue
        if name == "service_requests" and 'service_name="frontend"' not in labels:
            continue
        kind = "frontend" if name == "service_requests" else "persistence"
        counts[f"{kind}:{operation.group(1)}"] += int(float(value))
    return counts


async def settled(stack: Stack, quiet: float = 2.0, within: float = 600) -> None:
    """Wait until no workflow or activity task has completed for `quiet` seconds."""

    def completions(counts: Counter[str]) -> int:
        return sum(v for k, v in counts.items() if k.startswith("frontend:Respond"))

    last = completions(await temporal_requests(stack.metrics_url))
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        await asyncio.sleep(quiet)
        now = completions(await temporal_requests(stack.metrics_url))
        if now == last:
            return
        last = now


async def transactions(stack: Stack) -> int:
    """Transactions committed or rolled back in the benchmark's database so far."""
    async with stack.sessions() as session:
        query = text(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int((await session.execute(query)).scalar_one())


async def _history_length(stack: Stack, workflow_id: str) -> int:
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)


async def _side(
    stack: Stack,
    count: int,
    concurrency: int,
    start: Callable[[str], Awaitable[list[str]]],
    process: str,
) -> dict[str, Any]:
    """Start `count` (enrollments or bare workflows) and wait for every first email.
    `start(address)` returns the ids of the workflows involved."""
    domain = f"{uuid.uuid4().hex[:10]}.example"
    addresses = [f"first-{n}@{domain}" for n in range(count)]
    started_at: dict[str, float] = {}
    workflows: dict[str, list[str]] = {}

    def call(address: str) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            started_at[address] = time.perf_counter()
            workflows[address] = await start(address)

        return go

    requests_before = await temporal_requests(stack.metrics_url)
    transactions_before = await transactions(stack)
    meter = stack.cpu_meter()
    meter.start()
    began = time.perf_counter()
    await in_parallel([call(a) for a in addresses], concurrency)
    requests_done = time.perf_counter()
    arrived = stack.sink.arrived
    for _ in range(18_000):  # at most an hour
        if sum(1 for a in addresses if a in arrived) >= count:
            break
        await asyncio.sleep(0.2)
    delivered = [a for a in addresses if a in arrived]
    last = max((arrived[a] for a in delivered), default=began)
    # What an enrollment costs includes what it sets off after its first email (the lead
    # workflow's scoring and segments): count until the server is quiet again.
    await settled(stack)
    await asyncio.sleep(1)  # PostgreSQL reports a backend's counts once it is idle
    cpu = meter.read()
    requests = await temporal_requests(stack.metrics_url) - requests_before
    committed = await transactions(stack) - transactions_before
    sample = addresses[:: max(1, count // SAMPLED_HISTORIES)][:SAMPLED_HISTORIES]
    histories: dict[str, list[int]] = {}
    for address in sample:
        for kind, workflow_id in zip(("journey", "lead"), workflows[address], strict=False):
            histories.setdefault(kind, []).append(await _history_length(stack, workflow_id))
    latencies = sorted(arrived[a] - started_at[a] for a in delivered)
    own = {"api", process, "temporal", "postgres"}
    return {
        "count": count,
        "delivered": len(delivered),
        "per_second": round(len(delivered) / (last - began), 1) if delivered else 0.0,
        "requests_per_second": round(count / (requests_done - began), 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)
        if latencies
        else None,
        "history_events": {k: round(sum(v) / len(v), 1) for k, v in histories.items()},
        "frontend_requests_per_enrollment": _per(requests, "frontend:", count),
        "persistence_requests_per_enrollment": round(
            sum(v for k, v in requests.items() if k.startswith("persistence:")) / count, 1
        ),
        "transactions_per_enrollment": round(committed / count, 2),
        "cpu_ms_per_enrollment": {
            name: round(1000 * used / count, 1) for name, used in cpu.items() if name in own
        },
    }


def _per(requests: Counter[str], prefix: str, count: int) -> dict[str, float]:
    return {
        key.removeprefix(prefix): round(value / count, 2)
        for key, value in sorted(requests.items(), key=lambda kv: -kv[1])
        if key.startswith(prefix) and value / count >= 0.01
    }


async def first_email(stack: Stack, count: int, concurrency: int) -> dict[str, Any]:
    """The engine's enrollment -> first email next to the bare baseline's."""

    async def enroll(address: str) -> list[str]:
        response = await stack.http.post("/v1/enrollments", json={
            "journey": "welcome", "lead": {"email": address},
            "consent": {"source": "bench", "confirmed": True},
        })  # fmt: skip
        response.raise_for_status()
        body = response.json()
        return [body["workflow_id"], lead_workflow_id(body["lead_id"])]

    async def bare(address: str) -> list[str]:
        workflow_id = f"bare-first-{uuid.uuid4().hex}"
        await stack.client.start_workflow(
            "BareFirstEmail", address, id=workflow_id, task_queue=stack.bare_queue
        )
        return [workflow_id]

    engine = await _side(stack, count, concurrency, enroll, "worker")
    baseline = await _side(stack, count, concurrency, bare, "bare_worker")
    return {
        "engine": engine,
        "bare": baseline,
        "ratio": round(engine["per_second"] / baseline["per_second"], 2)
        if baseline["per_second"]
        else None,
    }
