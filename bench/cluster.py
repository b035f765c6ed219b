"""`python -m bench.cluster`: Nurture on the four-service Temporal cluster (PostgreSQL
persistence and SQL visibility, `nurture cluster`'s code) next to Nurture on the in-memory
dev server, measured in the same run, with one and with two worker processes.

For each (server, workers) it measures, on a fresh Nurture stack (the workers, one API
process, an SMTP sink):

1. enrollments/s through the HTTP API for --seconds (closed loop, --concurrency clients,
   p50/p99), then the time until every welcome email reached the SMTP server, giving the
   end-to-end rate (enrollments whose welcome email arrived, per second of the whole run);
2. click -> next journey email: a lead's click on the welcome email's tracked link until
   the next email arrives at the SMTP server (--clicks samples, one at a time);
3. CPU seconds per process group during the enrollment load (API, workers, each Temporal
   service, PostgreSQL) and each one's RSS at the end.

The dev server is fresh for each configuration; the cluster is started once (databases of
its own, dropped afterwards) and keeps the earlier configurations' workflows, as a real
cluster would. Prints a table and writes bench/cluster-results.json; docs/performance.md
has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from bench.processes import CpuMeter, pids_where, rss_mib
from bench.run import (
    ROOT,
    TimedSink,
    _closed_loop,
    _latencies,
    _link,
    _spawn,
    _wait_for,
    nurture_env,
)
from db.migrate import upgrade_to_head
from starter.dev.provisioning.cluster import (
    ClusterSpec,
    LocalCluster,
    Postgres,
    ensure_binaries,
)
from starter.dev.provisioning.postgres import ensure_database
from starter.dev.provisioning.temporal import register_search_attributes, start_dev_server
from starter.dev.smtp_sink import free_port
from starter.temporal_client import connect
from workflows import search_attributes

# Connections per Nurture process and per Temporal service: they all share one PostgreSQL
# (max_connections 100), as in the cluster lane of the tests.
POOL = "5"


@dataclass
class Server:
    """A Temporal server to measure on: its address and its processes by name."""

    name: str
    address: str
    processes: Callable[[], dict[str, list[int]]]


@asynccontextmanager
async def dev_server() -> AsyncIterator[Server]:
    port = free_port()
    server = await start_dev_server(port=port)
    try:
        await register_search_attributes(server.client, "default", search_attributes.ALL)
        pids = pids_where(lambda c: "start-dev" in c and f"--port {port}" in c)
        yield Server("dev server (in-memory)", f"127.0.0.1:{port}", lambda: {"temporal": pids})
    finally:
        await server.shutdown()


@asynccontextmanager
async def cluster(database_url: str) -> AsyncIterator[Server]:
    binaries = await asyncio.to_thread(ensure_binaries)
    suffix = uuid.uuid4().hex[:8]
    spec = ClusterSpec(
        state_dir=Path(tempfile.mkdtemp(prefix="bench-cluster-")),
        postgres=Postgres.from_url(database_url),
        database=f"temporal_bench_{suffix}",
        visibility_database=f"temporal_bench_visibility_{suffix}",
        max_connections=8,
        max_visibility_connections=2,
    )
    local = LocalCluster(spec, binaries)
    try:
        await local.start_ready()
        client = await connect(local.address, "default")
        await register_search_attributes(client, "default", search_attributes.ALL)

        def processes() -> dict[str, list[int]]:
            return {f"temporal_{s.value}": [pid] for s, pid in local.running().items()}

        yield Server("cluster (4 services, PostgreSQL)", local.address, processes)
    finally:
        await asyncio.to_thread(local.stop)
        await asyncio.to_thread(local.drop_databases)


@dataclass
class Nurture:
    """Nurture's processes on one server, and what they talk to."""

    server: Server
    sink: TimedSink
    http: httpx.AsyncClient
    workers: list[asyncio.subprocess.Process]
    api: asyncio.subprocess.Process

    def groups(self) -> dict[str, Callable[[], list[int]]]:
        groups: dict[str, Callable[[], list[int]]] = {
            "api": lambda: [self.api.pid],
            "workers": lambda: [w.pid for w in self.workers],
            "postgres": lambda: pids_where(lambda c: c.startswith("postgres")),
        }
        for name in self.server.processes():
            groups[name] = lambda name=name: self.server.processes()[name]  # type: ignore[misc]
        return groups

    def rss(self) -> dict[str, float]:
        found = {name: find() for name, find in self.groups().items()}
        return {name: round(sum(_rss(pid) for pid in pids), 1) for name, pids in found.items()}


def _rss(pid: int) -> float:
    try:
        return rss_mib(pid)
    except OSError:
        return 0.0


@asynccontextmanager
async def nurture(server: Server, database_url: str, workers: int) -> AsyncIterator[Nurture]:
    sink = TimedSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    api_port, key = free_port(), "bench-" + secrets.token_hex(12)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = nurture_env(
        server.address, queue, database_url, controller.port, api_port, key,
        NURTURE_DATABASE_POOL_SIZE=POOL,
    )  # fmt: skip
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(workers):
            worker = [sys.executable, str(ROOT / "worker.py")]
            processes.append(await _spawn(worker, env, b"worker on"))
        api = [sys.executable, "-m", "starter.cli.app", "api", "--port", str(api_port)]
        processes.append(await _spawn(api, env, b"Application startup complete"))
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        ) as http:
            yield Nurture(server, sink, http, processes[:-1], processes[-1])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        controller.stop()


async def _enroll(http: httpx.AsyncClient, email: str) -> None:
    response = await http.post("/v1/enrollments", json={
        "journey": "welcome", "lead": {"email": email},
        "consent": {"source": "bench", "confirmed": True},
    })  # fmt: skip
    response.raise_for_status()


async def enrollments(stack: Nurture, seconds: float, concurrency: int) -> dict[str, Any]:
    async def enroll() -> None:
        await _enroll(stack.http, f"c@{uuid.uuid4().hex[:12]}.example")

    meter = CpuMeter(stack.groups())
    meter.start()
    began = time.perf_counter()
    result: dict[str, Any] = await _closed_loop(enroll, seconds, concurrency)
    # Until every enrolled lead's welcome email has arrived (the workers catch up).
    for _ in range(4500):  # at most 15 minutes
        if len(stack.sink.messages) >= result["count"]:
            break
        await asyncio.sleep(0.2)
    last = max(stack.sink.arrived.values(), default=began)
    result["welcome_emails"] = len(stack.sink.messages)
    result["end_to_end_per_second"] = round(result["welcome_emails"] / (last - began), 1)
    result["cpu_seconds"] = meter.read()
    result["cpu_ms_per_enrollment"] = {
        name: round(1000 * used / max(1, result["count"]), 1)
        for name, used in result["cpu_seconds"].items()
    }
    return result


async def click_to_email(stack: Nurture, samples: int) -> dict[str, Any]:
    latencies: list[float] = []
    lost = 0
    for _ in range(samples):
        email = f"click@{uuid.uuid4().hex[:12]}.example"
        await _enroll(stack.http, email)
        # Polled every 5 ms: a dict lookup, not a scan of every message received.
        await _wait_for(lambda e=email: stack.sink.arrivals.get(e), 120)
        [welcome] = stack.sink.to(email)
        await asyncio.sleep(0.3)  # the journey waits for the click
        started = time.perf_counter()
        response = await stack.http.get(_link(welcome, "/t/c/"), follow_redirects=False)
        assert response.status_code == 302, response.text
        try:
            await _wait_for(lambda e=email: len(stack.sink.arrivals.get(e, ())) >= 2, 60)
        except TimeoutError:
            lost += 1
            continue
        latencies.append(stack.sink.arrivals[email][1] - started)
    return _latencies(latencies, lost)


async def configuration(
    server: Server, database_url: str, workers: int, options: argparse.Namespace
) -> dict[str, Any]:
    async with nurture(server, database_url, workers) as stack:
        result = {
            "server": server.name,
            "workers": workers,
            "enrollments": await enrollments(stack, options.seconds, options.concurrency),
            "click_to_email": await click_to_email(stack, options.clicks),
            "rss_mib": stack.rss(),
        }
    print(json.dumps(result), flush=True)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'server':34} {'workers':>7} {'enroll/s':>9} {'p99 ms':>8} {'e2e/s':>7} "
          f"{'click p50':>9} {'click p99':>9}")  # fmt: skip
    for r in results:
        e, c = r["enrollments"], r["click_to_email"]
        print(f"{r['server']:34} {r['workers']:>7} {e['per_second']:>9} {e['p99_ms']:>8} "
              f"{e['end_to_end_per_second']:>7} {c['p50_ms']:>9} {c['p99_ms']:>9}")  # fmt: skip
    print("\nCPU ms per enrollment / RSS MiB at the end, by process group:")
    for r in results:
        cpu = r["enrollments"]["cpu_ms_per_enrollment"]
        parts = ", ".join(f"{n} {cpu[n]}/{r['rss_mib'].get(n, 0)}" for n in cpu)
        print(f"  {r['server']}, {r['workers']} worker(s): {parts}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="enrollment load per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clicks", type=int, default=30, help="click->email samples per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "cluster-results.json")
    options = parser.parse_args()
    database_url = ensure_database()
    upgrade_to_head(database_url)
    results: list[dict[str, Any]] = []
    for workers in options.workers:
        async with dev_server() as server:
            results.append(await configuration(server, database_url, workers, options))
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(cluster(database_url))
        for workers in options.workers:
            results.append(await configuration(server, database_url, workers, options))
    print_table(results)
    options.out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: str(v) for k, v in vars(options).items()},
        "results": results,
    }, indent=2) + "\n")  # fmt: skip
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: skip finalization after Temporal work


if __name__ == "__main__":
    asyncio.run(main())
