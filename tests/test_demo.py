"""The README's first command as a newcomer runs it: `nurture demo --exit-after-scenario`
on embedded defaults (an embedded Temporal dev server, SQLite, a local mailbox), in a data
directory of its own. It broke once without any test noticing (the worker's path moved):
this runs it whole."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.test_cli import NURTURE

# What a newcomer's shell doesn't have: the demo must pick its own defaults.
NOT_SET = ("DATABASE_URL", "TEST_DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_HOST", "SMTP_PORT")


async def test_the_demo_runs_its_scenario_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NOT_SET}
    env |= {"NURTURE_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *NURTURE, "demo", "--exit-after-scenario", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    raw, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    out = raw.decode()

    assert process.returncode == 0, out[-3000:]
    assert "Welcome to Nurture, Ada" in out  # the worker sent the welcome email
    assert "owner" in out  # Grace became an MQL, handed to a rep
    assert "Please confirm" in out  # Alan got the double opt-in
    assert "broadcast Demo newsletter (done)" in out
    assert "Traceback" not in (tmp_path / "logs" / "worker.log").read_text()
