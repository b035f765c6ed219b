"""Engagement events at the API, the way a website's tracking sends them.

- `event_rate`: `POST /v1/events` at a steady rate (open loop, 300/s by default, from
  `bench/http_load.py`: 64 keep-alive connections) over a set of enrolled leads for a
  while: the API's latency, the rate it kept up, and how long until every event had
  reached its workflows (stored as signalled, and the lead workflows quiet again), with
  CPU per event by process. Next to it the bare baseline of
  the same work: the bench process inserts the same row and signals a bare workflow
  (`BareEventSink`) per event, at the same rate.
- `event_cost`: what one event costs as a lead's history grows: leads with 10, 1,000 and
  10,000 prior events (spread over the past year) each get the same events at a low rate;
  CPU milliseconds per event by process, each event taken on its own by the lead workflow.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, insert, select

from bench.first_email import settled
from bench.http_load import open_loop, request_bytes
from db.models import EngagementEvent, Lead

if TYPE_CHECKING:
    from bench.run import Stack

PRIOR_TYPES = ("page_view", "email_open", "email_click", "download")


def _latencies(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
    }


async def _open_loop(
    rate: float, seconds: float, call: Callable[[], Awaitable[bool]]
) -> dict[str, Any]:
    """Call `call` `rate` times a second for `seconds`, whether or not earlier calls have
    returned; their latencies, failures and the rate achieved."""
    latencies: list[float] = []
    failed = 0

    async def timed() -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            ok = await call()
        except (httpx.HTTPError, OSError):
            ok = False
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1

    tasks = []
    began = time.perf_counter()
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + number / rate - time.perf_counter()))
        tasks.append(asyncio.get_running_loop().create_task(timed()))
    sent_for = time.perf_counter() - began
    await asyncio.gather(*tasks)
    return {
        "sent": len(tasks),
        "failed": failed,
        "offered_per_s": round(len(tasks) / sent_for, 1),
        "answered_per_s": round(len(latencies) / (time.perf_counter() - began), 1),
        **_latencies(latencies),
    }


async def _enrolled_leads(stack: Stack, count: int) -> list[str]:
    """`count` leads enrolled in the welcome journey, their first email sent (so their
    workflows are waiting, as a real lead's are when it browses)."""
    # Each at a company of its own, as a website's visitors are (many contacts of one
    # account all active at once queue on the account's row: docs/performance.md).
    run = uuid.uuid4().hex[:8]
    emails = [f"visitor@{run}-{number}.example" for number in range(count)]
    ids = []
    for email in emails:
        response = await stack.http.post("/v1/enrollments", json={
            "journey": "welcome", "lead": {"email": email},
            "consent": {"source": "bench", "confirmed": True},
        })  # fmt: skip
        response.raise_for_status()
        ids.append(str(response.json()["lead_id"]))
    for email in emails:
        for _ in range(3000):
            if stack.sink.to(email):
                break
            await asyncio.sleep(0.1)
    await settled(stack)
    return ids


def _event(lead_id: str, event_id: str) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "type": "page_view",
        "event_id": event_id,
        "properties": {"url": "https://www.nurture.example/pricing"},
    }


async def _post(stack: Stack, lead_id: str, event_id: str) -> bool:
    response = await stack.http.post("/v1/events", json=_event(lead_id, event_id))
    return response.status_code == 202


async def _unsignalled(stack: Stack, prefix: str) -> int:
    async with stack.sessions() as session:
        query = select(func.count()).where(
            EngagementEvent.event_id.like(f"{prefix}%"), EngagementEvent.signalled_at.is_(None)
        )
        return int((await session.execute(query)).scalar_one())


async def _drained(stack: Stack, prefix: str, within: float = 600) -> None:
    """Every event of the run stored as signalled, then the workflows quiet again."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        if not await _unsignalled(stack, prefix):
            break
        await asyncio.sleep(0.2)
    await settled(stack, quiet=1.0)


def _cpu_per(cpu: dict[str, float], count: int, groups: set[str]) -> dict[str, float]:
    return {name: round(1000 * used / count, 2) for name, used in cpu.items() if name in groups}


async def _engine_rate(
    stack: Stack, leads: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    prefix = f"rate-{uuid.uuid4().hex[:8]}-"
    url = stack.http.base_url
    host, port = str(url.host), int(url.port or 80)
    headers = {"Authorization": stack.http.headers["Authorization"]}

    def request() -> bytes:
        body = _event(random.choice(leads), f"{prefix}{uuid.uuid4().hex}")
        return request_bytes("POST", f"{host}:{port}", "/v1/events", headers, body)

    meter = stack.cpu_meter()
    meter.start()
    began = time.perf_counter()
    load = await open_loop(host, port, rate, seconds, request, ok=(202,))
    load_ended = time.perf_counter()
    await _drained(stack, prefix)
    left = await _unsignalled(stack, prefix)
    cpu = meter.read()
    answered = len(load.latencies)
    return {
        "sent": load.sent,
        "failed": load.failed,
        "statuses": load.statuses,
        "offered_per_s": round(load.sent / load.offered_for, 1),
        "answered_per_s": round(answered / load.answered_for, 1),
        **_latencies(load.latencies),
        "not_reached": left,
        "drained_after_load_s": round(time.perf_counter() - load_ended - 1.0, 1),
        "total_s": round(time.perf_counter() - began, 1),
        "cpu_ms_per_event": _cpu_per(
            cpu, max(answered, 1), {"api", "worker", "temporal", "postgres"}
        ),
    }


async def _bare_rate(stack: Stack, leads: list[str], rate: float, seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    handles = {
        lead: await stack.client.start_workflow(
            "BareEventSink", id=f"bare-events-{run}-{lead}", task_queue=stack.bare_queue
        )
        for lead in leads
    }

    async def store_and_signal() -> bool:
        lead = random.choice(leads)
        async with stack.sessions() as session:
            session.add(EngagementEvent(
                lead_id=lead, event_id=f"bare-{run}-{uuid.uuid4().hex}", type="page_view",
                occurred_at=datetime.now(UTC), properties={"url": "https://x.example/pricing"},
                signalled_at=datetime.now(UTC),
            ))  # fmt: skip
            await session.commit()
        await handles[lead].signal("event")
        return True

    meter = stack.cpu_meter()
    meter.start()
    load = await _open_loop(rate, seconds, store_and_signal)
    await settled(stack, quiet=1.0)
    cpu = meter.read()
    seen = sum([await handle.query("seen") for handle in handles.values()])
    for handle in handles.values():
        await handle.terminate("benchmark over")
    return {
        **load,
        "not_reached": load["sent"] - load["failed"] - seen,
        "cpu_ms_per_event": _cpu_per(
            cpu, max(load["sent"], 1), {"bare_worker", "temporal", "postgres"}
        ),
    }


async def event_rate(stack: Stack, rate: float, seconds: float, leads: int) -> dict[str, Any]:
    """The engine's `POST /v1/events` at `rate` next to the bare baseline's row + signal."""
    ids = await _enrolled_leads(stack, leads)
    engine = await _engine_rate(stack, ids, rate, seconds)
    bare = await _bare_rate(stack, ids, rate, seconds)
    return {"rate_per_s": rate, "seconds": seconds, "leads": leads, "engine": engine, "bare": bare}


async def _with_history(stack: Stack, lead_id: str, prior: int) -> None:
    """Give the lead `prior` events spread over the past year (stored as signalled long ago)."""
    now = datetime.now(UTC)
    rows = [
        {
            "lead_id": lead_id,
            "event_id": f"prior-{number}",
            "type": PRIOR_TYPES[number % len(PRIOR_TYPES)],
            "occurred_at": now - timedelta(days=365 * (number + 1) / prior),
            "received_at": now,
            "signalled_at": now,
            "properties": {"url": f"https://www.nurture.example/page-{number % 50}"},
        }
        for number in range(prior)
    ]
    async with stack.sessions() as session:
        for start in range(0, len(rows), 2000):
            await session.execute(insert(EngagementEvent), rows[start : start + 2000])
        await session.commit()


async def _scored_since(stack: Stack, lead_id: str, moment: datetime) -> bool:
    async with stack.sessions() as session:
        at = (await session.execute(select(Lead.scored_at).where(Lead.id == lead_id))).scalar_one()
    return at is not None and at.replace(tzinfo=at.tzinfo or UTC) >= moment


async def _cost_of_events(stack: Stack, lead_id: str, count: int, rate: float) -> dict[str, Any]:
    prefix = f"cost-{uuid.uuid4().hex[:8]}-"
    await _post(stack, lead_id, f"{prefix}warm-up")  # the first rescore over the history
    await _drained(stack, prefix)
    meter = stack.cpu_meter()
    meter.start()
    load = await _open_loop(
        rate, count / rate, lambda: _post(stack, lead_id, f"{prefix}{uuid.uuid4().hex}")
    )
    last = datetime.now(UTC)
    await _drained(stack, prefix)
    for _ in range(600):
        if await _scored_since(stack, lead_id, last - timedelta(seconds=1)):
            break
        await asyncio.sleep(0.1)
    cpu = meter.read()
    answered = load["sent"] - load["failed"]
    per_event = _cpu_per(cpu, max(answered, 1), {"api", "worker", "temporal", "postgres"})
    return {
        "events": answered,
        "api_p50_ms": load["p50_ms"],
        "api_p99_ms": load["p99_ms"],
        "cpu_ms_per_event": per_event,
        "cpu_ms_per_event_total": round(sum(per_event.values()), 2),
    }


async def event_cost(
    stack: Stack, sizes: tuple[int, ...], count: int, rate: float
) -> dict[str, Any]:
    """CPU per event for leads with `sizes` prior events, `count` events each at `rate`."""
    leads = await _enrolled_leads(stack, len(sizes))
    result: dict[str, Any] = {"events_per_lead": count, "rate_per_s": rate}
    for lead_id, prior in zip(leads, sizes, strict=True):
        await _with_history(stack, lead_id, prior)
        result[str(prior)] = await _cost_of_events(stack, lead_id, count, rate)
    totals = [result[str(prior)]["cpu_ms_per_event_total"] for prior in sizes]
    result["spread"] = round(max(totals) / min(totals), 2) if min(totals) else None
    return result
