"""The `nurture` CLI as a user runs it: a separate process talking to the real API."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from temporalio.worker import Worker

from starter.dev.smtp_sink import free_port
from tests.conftest import MARKETING_KEY

NURTURE = [sys.executable, "-m", "starter.cli.app"]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *NURTURE, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def test_enroll_csv_shows_progress_and_reports_the_bad_rows(
    api_url: str, worker: Worker, tmp_path: Path
) -> None:
    domain = f"cli-{uuid.uuid4().hex[:8]}.example"
    csv = tmp_path / "leads.csv"
    csv.write_text(
        "email,first_name\n"
        + "".join(f"lead{i}@{domain},Lead{i}\n" for i in range(40))
        + "broken-address,Nobody\n"
    )

    code, out = await run_cli(
        "enroll", "--csv", str(csv), "--journey", "welcome", "--poll", "0.2",
        env={"NURTURE_API_URL": api_url, "NURTURE_API_KEY": MARKETING_KEY},
    )  # fmt: skip

    assert code == 0, out
    assert "40/41" in out or "41/41" in out  # the progress bar's count
    assert "40 enrolled, 0 already enrolled, 1 rows with errors" in out
    assert "42" in out and "email" in out  # the bad row: line 42 of the file, its field


async def test_an_unreachable_api_gets_a_sentence_not_a_traceback() -> None:
    code, out = await run_cli("leads", "--api-url", f"http://127.0.0.1:{free_port()}")

    assert code == 1
    assert "cannot reach the Nurture API" in out and "nurture api" in out
    assert "Traceback" not in out


async def test_a_wrong_key_is_explained(api_url: str) -> None:
    code, out = await run_cli("journeys", "--api-url", api_url, "--api-key", "wrong-key-123456")

    assert code == 1
    assert "refused the key" in out and "NURTURE_API_KEY" in out


async def test_journeys_lists_the_catalogue(api_url: str) -> None:
    code, out = await run_cli("journeys", "--api-url", api_url, "--api-key", MARKETING_KEY)

    assert code == 0, out
    assert "whitepaper-nurture" in out and "recycled-nurture" in out


async def test_every_command_has_help() -> None:
    for command in ("enroll", "leads", "lead", "feedback", "funnel", "journeys", "segments",
                    "segment", "api",
                    "simulate", "preview", "provision"):  # fmt: skip
        code, out = await run_cli(command, "--help")
        assert code == 0 and "Usage" in out, (command, out)


async def test_segments_lists_every_segment_with_its_size(api_url: str) -> None:
    code, out = await run_cli("segments", "--api-url", api_url, "--api-key", MARKETING_KEY)

    assert code == 0, out
    assert "pricing-visitors" in out and "dormant" in out


async def test_segment_shows_a_definition(api_url: str) -> None:
    code, out = await run_cli(
        "segment", "pricing-visitors", "--api-url", api_url, "--api-key", MARKETING_KEY
    )

    assert code == 0, out
    assert "page_view" in out and "members" in out
