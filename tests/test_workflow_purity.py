"""Workflows import nothing that does I/O: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "jinja2", "aiosmtplib", "httpx", "psycopg", "fastapi", "db", "starter")


def test_importing_the_workflows_loads_no_io_library() -> None:
    probe = (
        "import json, sys; import workflows.journey; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", probe], text=True)))

    assert loaded.isdisjoint(FORBIDDEN), loaded & set(FORBIDDEN)
