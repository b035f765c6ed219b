"""`python -m bench.run`: Nurture's benchmarks, each side by side with a bare-Temporal
baseline measured in the same run, on the same machine and servers.

1. enrollments/s through the HTTP API for --seconds (p50/p99) vs `start_workflow` of a
   bare workflow with one activity;
2. click -> CRM handover latency (tracking hit to the CRM receiving the lead) under a
   background of 10 events/s, vs signal -> activity -> POST in a bare workflow;
3. click-redirect latency at 200 requests/s (no baseline: nothing in bare Temporal);
4. --journeys sleeping journeys (10,000 by default): creation rate and worker RSS with the
   workflow cache bounded; their timers all due in the same minute: time until every one
   has run (its email sent); worker CPU-seconds per journey; vs `BareSleeper`, a bare
   workflow that sleeps and then runs the same `send_email` activity.

Prints a table and writes bench/results.json. Real parts, fresh for each benchmark: a
Temporal dev server, an SMTP sink, a CRM receiver, the worker and the API as processes;
PostgreSQL (the test database) throughout. docs/performance.md has the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from bench.processes import CpuMeter, pids_where, rss_mib
from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import Lead, OutboxEmail, new_id
from journeys.dsl import End, SendEmail, Wait
from journeys.outbox import OutboxStatus
from journeys.validation import define_journey
from starter.dev.provisioning.postgres import ensure_database
from starter.dev.provisioning.temporal import register_search_attributes, start_dev_server
from starter.dev.smtp_sink import SmtpSink, free_port, start_sink
from starter.services.enrollment import start_journey
from starter.temporal_client import connect
from tests.http_servers import serving
from workflows import search_attributes
from workflows.contracts import journey_workflow_id

ROOT = Path(__file__).resolve().parent.parent
CRM_SECRET = "bench-crm-secret-0123456789"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _latencies(values: list[float], errors: int = 0) -> dict[str, float]:
    return {
        "count": len(values),
        "errors": errors,
        "p50_ms": round(1000 * _percentile(values, 0.5), 1),
        "p99_ms": round(1000 * _percentile(values, 0.99), 1),
    }


async def _spawn(args: list[str], env: dict[str, str], ready: bytes) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    seen = b""
    while ready not in seen:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(seen.decode()[-2000:])
        seen += line
    # Keep draining its output, so a chatty process never blocks on a full pipe.
    asyncio.get_running_loop().create_task(process.stdout.read())
    return process


@dataclass
class CrmReceiver:
    """The CRM: notes when each lead (or bare workflow) arrives."""

    arrived: dict[str, float] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def receive(request: Request) -> Response:
            body = await request.json()
            key = (body.get("lead") or {}).get("id") or body.get("bare") or ""
            self.arrived.setdefault(str(key), time.perf_counter())
            return Response(status_code=201)

        return app


@dataclass
class Stack:
    """Everything a benchmark talks to."""

    address: str
    client: Client
    sessions: async_sessionmaker
    sink: SmtpSink
    crm: CrmReceiver
    crm_url: str
    http: httpx.AsyncClient
    queue: str
    bare_queue: str
    worker: asyncio.subprocess.Process
    api: asyncio.subprocess.Process
    bare_worker: asyncio.subprocess.Process
    server_pids: list[int]

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({
            "api": lambda: [self.api.pid],
            "worker": lambda: [self.worker.pid],
            "bare_worker": lambda: [self.bare_worker.pid],
            "temporal": lambda: self.server_pids,
            "postgres": lambda: pids_where(lambda c: c.startswith("postgres")),
        })  # fmt: skip


@asynccontextmanager
async def bench_stack() -> AsyncIterator[Stack]:
    port = free_port()
    server = await start_dev_server(port=port)
    await register_search_attributes(server.client, "default", search_attributes.ALL)
    address = f"127.0.0.1:{port}"
    server_pids = pids_where(lambda c: "start-dev" in c and f"--port {port}" in c)
    database = ensure_database()
    upgrade_to_head(database)
    engine = create_engine_for(database)
    controller, sink = start_sink()
    crm = CrmReceiver()
    api_port, queue = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    bare_queue = f"bare-{uuid.uuid4().hex[:8]}"
    key = "bench-" + secrets.token_hex(12)
    processes: list[asyncio.subprocess.Process] = []
    try:
        async with serving(crm.app()) as crm_base:
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": address,
                "NURTURE_TASK_QUEUE": queue,
                "DATABASE_URL": database,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(controller.port),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
                "NURTURE_SECRET_KEY": secrets.token_urlsafe(32),
                "NURTURE_API_KEYS": f"marketing:{key}",
                "NURTURE_QUIET_HOURS": "",
                "NURTURE_FREQUENCY_CAP": "",
                "CRM_ADAPTER": "webhook",
                "CRM_WEBHOOK_URL": f"{crm_base}/crm",
                "CRM_WEBHOOK_SECRET": CRM_SECRET,
                "PYTHONUNBUFFERED": "1",
            }
            python = sys.executable
            processes.append(await _spawn([python, str(ROOT / "worker.py")], env, b"worker on"))
            processes.append(await _spawn(
                [python, "-m", "starter.cli.app", "api", "--port", str(api_port)], env,
                b"Application startup complete",
            ))  # fmt: skip
            processes.append(
                await _spawn([python, "-m", "bench.bare", address, bare_queue], env, b"worker on")
            )
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
            ) as http:
                yield Stack(
                    address=address,
                    client=await connect(address, "default"),
                    sessions=session_factory(engine),
                    sink=sink,
                    crm=crm,
                    crm_url=f"{crm_base}/crm",
                    http=http,
                    queue=queue,
                    bare_queue=bare_queue,
                    worker=processes[0],
                    api=processes[1],
                    bare_worker=processes[2],
                    server_pids=server_pids,
                )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        controller.stop()
        await engine.dispose()
        await server.shutdown()


def _profile(pid: int, name: str, seconds: float, into: Path | None) -> subprocess.Popen | None:
    """Sample a process with py-spy for `seconds` (collapsed stacks), when asked to."""
    if into is None:
        return None
    into.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--format", "raw", "--nonblocking", "-o", str(into / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _closed_loop(
    call: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"per_second": round(len(latencies) / elapsed, 1), **_latencies(latencies, errors)}


# --- 1. enrollments -------------------------------------------------------------------


async def enrollments(
    stack: Stack, seconds: float, concurrency: int, profile: Path | None
) -> dict[str, Any]:
    async def enroll() -> None:
        response = await stack.http.post("/v1/enrollments", json={
            "journey": "welcome",
            "lead": {"email": f"b@{uuid.uuid4().hex[:12]}.example"},
            "consent": {"source": "bench", "confirmed": True},
        })  # fmt: skip
        response.raise_for_status()

    async def start_bare() -> None:
        await stack.client.start_workflow(
            "BareWorkflow", uuid.uuid4().hex, id=f"bare-{uuid.uuid4().hex}",
            task_queue=stack.bare_queue,
        )  # fmt: skip

    samplers = [
        _profile(stack.worker.pid, "worker", seconds, profile),
        _profile(stack.api.pid, "api", seconds, profile),
    ]
    meter = stack.cpu_meter()
    meter.start()
    # The loop's numbers, then the CPU seconds by process group.
    engine: dict[str, Any] = await _closed_loop(enroll, seconds, concurrency)
    engine["cpu_seconds"] = meter.read()
    for sampler in samplers:
        if sampler is not None:
            sampler.wait()
    # The worker runs every enrolled journey after the API answered: let it catch up
    # before the baseline (and note how long that took).
    began = time.perf_counter()
    for _ in range(1800):
        if len(stack.sink.messages) >= engine["count"]:
            break
        await asyncio.sleep(0.5)
    engine["worker_caught_up_after_s"] = round(time.perf_counter() - began, 1)
    meter.start()
    bare: dict[str, Any] = await _closed_loop(start_bare, seconds, concurrency)
    bare["cpu_seconds"] = meter.read()
    return {
        "engine": engine,
        "bare": bare,
        "ratio": round(engine["per_second"] / bare["per_second"], 2)
        if bare["per_second"]
        else None,
    }


# --- 2. click -> CRM handover ---------------------------------------------------------


def _link(message: Any, path: str) -> str:
    html = message.get_body(("html",)).get_content()
    found = re.search(rf'href="https?://[^/"]+({re.escape(path)}[^"]+)"', html)
    assert found, "no tracked link in the email"
    return found.group(1).replace("&amp;", "&")


async def _wait_for(probe: Callable[..., Any], within: float) -> Any:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.005)
    raise TimeoutError("waited too long")


async def _enroll(stack: Stack, lead: dict[str, Any], journey: str = "welcome") -> str:
    response = await stack.http.post("/v1/enrollments", json={
        "journey": journey, "lead": lead, "consent": {"source": "bench", "confirmed": True},
    })  # fmt: skip
    response.raise_for_status()
    return str(response.json()["lead_id"])


async def _background_events(stack: Stack, lead_ids: list[str], per_second: float) -> None:
    """Page views at a steady rate, as long as the task runs."""
    number = 0
    while True:
        number += 1
        asyncio.get_running_loop().create_task(stack.http.post("/v1/events", json={
            "lead_id": random.choice(lead_ids), "type": "page_view",
            "event_id": f"bg-{uuid.uuid4().hex}", "properties": {"url": "https://x.example/a"},
        }))  # fmt: skip
        await asyncio.sleep(1 / per_second)


async def click_to_handover(stack: Stack, samples: int, background: float) -> dict[str, Any]:
    background_leads = [
        await _enroll(stack, {"email": f"bg@{uuid.uuid4().hex[:12]}.example"}) for _ in range(20)
    ]
    ready: list[tuple[str, str]] = []  # (lead id, tracked click path)
    for _ in range(samples):
        token = uuid.uuid4().hex[:10]
        email = f"dana@{token}.example"
        lead_id = await _enroll(stack, {
            "email": email, "first_name": f"Dana{token}", "title": "VP Marketing",
            "company": "Acme", "company_size": 800, "industry": "software", "country": "DE",
            "persona": "decision-maker",
        })  # fmt: skip
        for kind in ("webinar_attended", "download"):  # 15 + 10: one click (5) short of 30
            response = await stack.http.post("/v1/events", json={
                "lead_id": lead_id, "type": kind, "event_id": f"prime-{kind}",
            })  # fmt: skip
            response.raise_for_status()
        welcome = await _wait_for(lambda e=email: stack.sink.to(e), 300)
        ready.append((lead_id, _link(welcome[0], "/t/c/")))
    for lead_id, _ in ready:  # primed: behaviour 25 scored
        for _ in range(600):
            score = (await stack.http.get(f"/v1/leads/{lead_id}/score")).json()
            if score.get("behaviour", 0) >= 25:
                break
            await asyncio.sleep(0.1)
    load = asyncio.get_running_loop().create_task(
        _background_events(stack, background_leads, background)
    )
    try:
        engine: list[float] = []
        for lead_id, path in ready:
            started = time.perf_counter()
            response = await stack.http.get(path, follow_redirects=False)
            assert response.status_code == 302, response.text
            arrived = await _wait_for(lambda i=lead_id: stack.crm.arrived.get(i), 60)
            engine.append(arrived - started)
            await asyncio.sleep(0.3)
        bare: list[float] = []
        bare_lost = 0  # not arrived within 20 s
        for _ in range(samples):
            workflow_id = f"bare-handover-{uuid.uuid4().hex}"
            handle = await stack.client.start_workflow(
                "BareHandover", stack.crm_url, id=workflow_id, task_queue=stack.bare_queue
            )
            await asyncio.sleep(0.3)  # started and waiting, like a lead workflow
            started = time.perf_counter()
            await handle.signal("click")
            try:
                arrived = await _wait_for(lambda w=workflow_id: stack.crm.arrived.get(w), 20)
            except TimeoutError:
                bare_lost += 1
                continue
            bare.append(arrived - started)
    finally:
        load.cancel()
    return {
        "engine": _latencies(engine),
        "bare": _latencies(bare, bare_lost),
        "background_per_s": background,
    }


# --- 3. click redirects ---------------------------------------------------------------


async def redirects(stack: Stack, rate: float, seconds: float) -> dict[str, Any]:
    paths = []
    for message in stack.sink.messages[-400:]:
        try:
            paths.append(_link(message, "/t/c/"))
        except (AssertionError, KeyError, AttributeError):
            continue
    latencies: list[float] = []
    errors = 0

    async def hit(path: str) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            response = await stack.http.get(path, follow_redirects=False)
            if response.status_code != 302:
                errors += 1
                return
        except httpx.HTTPError:
            errors += 1
            return
        latencies.append(time.perf_counter() - started)

    tasks = []
    begin = time.perf_counter()
    for number in range(int(rate * seconds)):
        # Open loop: requests leave on schedule whether or not earlier ones returned.
        await asyncio.sleep(max(0.0, begin + number / rate - time.perf_counter()))
        tasks.append(asyncio.get_running_loop().create_task(hit(random.choice(paths))))
    await asyncio.gather(*tasks)
    achieved = len(tasks) / (time.perf_counter() - begin)
    return {
        "rate_per_s": rate,
        "achieved_per_s": round(achieved, 1),
        **_latencies(latencies, errors),
    }


# --- 4. sleeping journeys, their timers, CPU per journey ------------------------------


async def _insert_leads(stack: Stack, count: int, prefix: str) -> list[str]:
    ids = [new_id() for _ in range(count)]
    async with stack.sessions() as session:
        for start in range(0, count, 1000):
            rows = [
                {"id": i, "email": f"{prefix}-{i}@sleep.example", "consent_status": "confirmed"}
                for i in ids[start : start + 1000]
            ]
            await session.execute(insert(Lead), rows)
        await session.commit()
    return ids


async def _sent(stack: Stack, pattern: str) -> int:
    async with stack.sessions() as session:
        query = (
            select(func.count())
            .select_from(OutboxEmail)
            .where(OutboxEmail.workflow_id.like(pattern), OutboxEmail.status == OutboxStatus.SENT)
        )
        return int((await session.execute(query)).scalar_one())


async def _in_parallel(calls: list[Callable[..., Awaitable[Any]]], width: int) -> None:
    gate = asyncio.Semaphore(width)

    async def run(call: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(run(c) for c in calls))


async def _sleepers_side(
    stack: Stack,
    name: str,
    worker_pid: int,
    count: int,
    start: Callable[[str, datetime], Awaitable[Any]],
    pattern: str,
    creation_rate_guess: float,
) -> dict[str, Any]:
    lead_ids = await _insert_leads(stack, count, name)
    due = datetime.now(UTC) + timedelta(seconds=30 + count / creation_rate_guess)
    rss = [round(rss_mib(worker_pid), 1)]
    meter = stack.cpu_meter()
    meter.start()
    began = time.perf_counter()
    for chunk in range(0, count, max(1, count // 10)):
        part = lead_ids[chunk : chunk + max(1, count // 10)]
        await _in_parallel([lambda i=i: start(i, due) for i in part], 32)
        rss.append(round(rss_mib(worker_pid), 1))
    created_in = time.perf_counter() - began
    await asyncio.sleep(3)
    rss_sleeping = round(rss_mib(worker_pid), 1)
    wait = (due - datetime.now(UTC)).total_seconds()
    if wait > 0:
        await asyncio.sleep(wait)
    woke = time.perf_counter()
    while await _sent(stack, pattern) < count:
        if time.perf_counter() - woke > 1800:
            break
        await asyncio.sleep(0.5)
    all_ran_in = time.perf_counter() - woke
    cpu = meter.read()
    own = cpu["worker" if name == "engine" else "bare_worker"]
    return {
        "journeys": count,
        "created_per_s": round(count / created_in, 1),
        "timers_overdue_at_creation_end_s": round(max(0.0, -wait), 1),
        "worker_rss_mib_during_creation": rss,
        "worker_rss_mib_sleeping": rss_sleeping,
        "worker_rss_mib_after_wake": round(rss_mib(worker_pid), 1),
        "all_timers_ran_within_s": round(all_ran_in, 1),
        "cpu_seconds": cpu,
        "worker_cpu_ms_per_journey": round(1000 * own / count, 2),
        "all_processes_cpu_ms_per_journey": round(
            1000 * sum(v for k, v in cpu.items() if k not in ("api",)) / count, 2
        ),
    }


async def sleeping_journeys(stack: Stack, count: int) -> dict[str, Any]:
    definition = define_journey(
        name="bench-sleeper",
        entry="sleep",
        steps=(
            Wait(id="sleep", until=datetime(2100, 1, 1, tzinfo=UTC), next="hello"),
            SendEmail(id="hello", template="welcome", next="done"),
            End(id="done"),
        ),
    )

    async def start_engine(lead_id: str, due: datetime) -> None:
        sleeper = definition.model_copy(
            update={"steps": (definition.steps[0].model_copy(update={"until": due}),
                              *definition.steps[1:])}
        )  # fmt: skip
        await start_journey(
            stack.client, stack.sessions, task_queue=stack.queue, lead_id=lead_id,
            definition=sleeper, lifecycle=None,
        )  # fmt: skip

    async def start_bare(lead_id: str, due: datetime) -> None:
        await stack.client.start_workflow(
            "BareSleeper", args=[lead_id, due], id=f"bare-sleeper:{lead_id}",
            task_queue=stack.bare_queue,
        )  # fmt: skip

    engine = await _sleepers_side(
        stack, "engine", stack.worker.pid, count, start_engine,
        journey_workflow_id("bench-sleeper", "%"), 60,
    )  # fmt: skip
    bare = await _sleepers_side(
        stack, "bare", stack.bare_worker.pid, count, start_bare, "bare-sleeper:%", 120
    )
    return {
        "engine": engine,
        "bare": bare,
        "cpu_ratio": round(
            engine["worker_cpu_ms_per_journey"] / bare["worker_cpu_ms_per_journey"], 2
        )
        if bare["worker_cpu_ms_per_journey"]
        else None,
    }


# --- the table ------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    e, h, r, s = (result.get(k) for k in ("enrollments", "handover", "redirects", "sleepers"))
    rows: list[tuple[str, str, str, str]] = []
    if e:
        rows += [
            ("enrollments/s (API)", f"{e['engine']['per_second']}", f"{e['bare']['per_second']}",
             "≥ 0.8x bare, ≥ 50/s"),
            ("  p50 / p99 ms", f"{e['engine']['p50_ms']} / {e['engine']['p99_ms']}",
             f"{e['bare']['p50_ms']} / {e['bare']['p99_ms']}", ""),
            ("  engine / bare", f"{e['ratio']}", "", ""),
        ]  # fmt: skip
    if h:
        rows.append(("click→CRM p50 / p99 ms",
                     f"{h['engine']['p50_ms']} / {h['engine']['p99_ms']}",
                     f"{h['bare']['p50_ms']} / {h['bare']['p99_ms']}", "p99 < 250"))  # fmt: skip
    if r:
        rows.append((f"redirect @{r['rate_per_s']}/s p50/p99 ms",
                     f"{r['p50_ms']} / {r['p99_ms']}", "", "p99 < 50"))  # fmt: skip
    if s:
        en, ba = s["engine"], s["bare"]
        rows += [
            (f"{en['journeys']} sleepers created/s", f"{en['created_per_s']}",
             f"{ba['created_per_s']}", ""),
            ("  worker RSS MiB sleeping", f"{en['worker_rss_mib_sleeping']}",
             f"{ba['worker_rss_mib_sleeping']}", "< 512"),
            ("  all timers ran within s", f"{en['all_timers_ran_within_s']}",
             f"{ba['all_timers_ran_within_s']}", "< 300"),
            ("  worker CPU ms/journey", f"{en['worker_cpu_ms_per_journey']}",
             f"{ba['worker_cpu_ms_per_journey']}", "≤ 1.3x bare"),
            ("  engine / bare CPU", f"{s['cpu_ratio']}", "", ""),
        ]  # fmt: skip
    print(f"{'benchmark':<30}{'engine':>18}{'bare Temporal':>18}  target")
    for name, engine, bare, target in rows:
        print(f"{name:<30}{engine:>18}{bare:>18}  {target}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="enrollment load per side")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--journeys", type=int, default=10_000, help="sleeping journeys")
    parser.add_argument("--handovers", type=int, default=40, help="click->CRM samples")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["enrollments", "handover", "redirects", "sleepers"])  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy samples of the API and worker")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    options = parser.parse_args()
    wanted = set(options.only or ["enrollments", "handover", "redirects", "sleepers"])
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: str(v) for k, v in vars(options).items()},
    }
    # A fresh stack for each benchmark: the enrollment load leaves thousands of workflows
    # in the in-memory dev server, which slowed every later benchmark by several times.
    for name in ("enrollments", "handover", "redirects", "sleepers"):
        if name not in wanted:
            continue
        async with bench_stack() as stack:
            if name == "enrollments":
                result[name] = await enrollments(
                    stack, options.seconds, options.concurrency, options.profile
                )
            elif name == "handover":
                result[name] = await click_to_handover(stack, options.handovers, 10)
            elif name == "redirects":
                for _ in range(50):  # emails with tracked links to click
                    await _enroll(stack, {"email": f"r@{uuid.uuid4().hex[:12]}.example"})
                await asyncio.sleep(5)
                result[name] = await redirects(stack, 200, 15)
            else:
                result[name] = await sleeping_journeys(stack, options.journeys)
        print(f"{name}:", json.dumps(result[name]), flush=True)
    print_table(result)
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: skip finalization after Temporal work


if __name__ == "__main__":
    asyncio.run(main())
