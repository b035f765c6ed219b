"""`python -m bench.run`: enrollments per second through the HTTP API (the whole engine:
lead upsert, consent, journey and lead workflows, the welcome email) side by side with a
bare Temporal workflow with one activity, started directly, in the same run.

Prints a table and writes bench/results.json. Real parts: a Temporal dev server,
PostgreSQL (the test database), an SMTP sink, the worker and the API as processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from starter.provisioning.postgres import ensure_database
from starter.provisioning.temporal import register_search_attributes, start_dev_server
from starter.smtp_sink import free_port, start_sink
from starter.temporal_client import connect
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


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
    asyncio.get_running_loop().create_task(_drain(process))
    return process


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass


async def _load(call, seconds: float, concurrency: int) -> dict[str, float]:
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
    return {
        "count": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * _percentile(latencies, 0.5), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
    }


def _profile(process: asyncio.subprocess.Process, name: str, seconds: float, into: Path | None):
    """Sample a process with py-spy for `seconds` (collapsed stacks), when asked to."""
    if into is None:
        return None
    into.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(process.pid), "--duration", str(int(seconds)),
         "--format", "raw", "--nonblocking", "-o", str(into / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def enrollment_throughput(
    seconds: float, concurrency: int, profile: Path | None = None
) -> dict[str, object]:
    server = await start_dev_server(port=free_port())
    await register_search_attributes(server.client, "default", search_attributes.ALL)
    address = server.client.service_client.config.target_host
    database = ensure_database()
    controller, _ = start_sink()
    api_port, queue = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    key = "bench-" + secrets.token_hex(12)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "NURTURE_TASK_QUEUE": queue,
        "DATABASE_URL": database,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "NURTURE_SECRET_KEY": secrets.token_urlsafe(32),
        "NURTURE_API_KEYS": f"marketing:{key}",
        "NURTURE_QUIET_HOURS": "",
        "NURTURE_FREQUENCY_CAP": "",
        "PYTHONUNBUFFERED": "1",
    }
    processes = []
    try:
        processes.append(await _spawn([sys.executable, str(ROOT / "worker.py")], env, b"worker on"))
        processes.append(await _spawn(
            [sys.executable, "-m", "starter.cli", "api", "--port", str(api_port)], env,
            b"Application startup complete",
        ))  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=60
        ) as http:

            async def enroll() -> None:
                response = await http.post("/v1/enrollments", json={
                    "journey": "welcome",
                    "lead": {"email": f"b@{uuid.uuid4().hex[:12]}.example"},
                    "consent": {"source": "bench", "confirmed": True},
                })  # fmt: skip
                response.raise_for_status()

            samplers = [
                _profile(processes[0], "worker", seconds, profile),
                _profile(processes[1], "api", seconds, profile),
            ]
            engine = await _load(enroll, seconds, concurrency)
            for sampler in samplers:
                if sampler is not None:
                    sampler.wait()
        bare_queue = f"bare-{uuid.uuid4().hex[:8]}"
        bare_worker = [sys.executable, "-m", "bench.bare", address, bare_queue]
        processes.append(await _spawn(bare_worker, env, b"worker on"))
        client = await connect(address, "default")

        async def start_bare() -> None:
            await client.start_workflow(
                "BareWorkflow", uuid.uuid4().hex, id=f"bare-{uuid.uuid4().hex}",
                task_queue=bare_queue,
            )  # fmt: skip

        bare = await _load(start_bare, seconds, concurrency)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        controller.stop()
        await server.shutdown()
    return {
        "engine_api": engine,
        "bare_temporal": bare,
        "ratio": round(engine["per_second"] / bare["per_second"], 2)
        if bare["per_second"]
        else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", type=Path, help="py-spy samples of the API and worker")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    options = parser.parse_args()
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds": options.seconds,
        "concurrency": options.concurrency,
        "enrollments": await enrollment_throughput(
            options.seconds, options.concurrency, options.profile
        ),
    }
    enrollments = result["enrollments"]
    print(f"{'benchmark':<28}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name in ("engine_api", "bare_temporal"):
        row = enrollments[name]
        print(f"{'enroll: ' + name:<28}{row['per_second']:>8}{row['p50_ms']:>9}"
              f"{row['p99_ms']:>9}{row['errors']:>8}")  # fmt: skip
    print(f"engine / bare: {enrollments['ratio']}")
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: skip finalization after Temporal work


if __name__ == "__main__":
    asyncio.run(main())
