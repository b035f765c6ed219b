"""Debian's Chromium for the sales inbox's browser test: found, or installed with apt-get
when we are root (CI); otherwise the test says it needs it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> Path | None:
    """A Chromium or Chrome binary: CHROMIUM_PATH, else the first on PATH."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return Path(configured) if Path(configured).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def ensure_chromium() -> Path | None:
    """Chromium's path, installing Debian's package if missing and possible."""
    found = find_chromium()
    if found is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    log.warning("installing Chromium from Debian packages (for the browser test)…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        # Output to stderr: stdout of `nurture provision` is read by scripts/test.
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, stdout=sys.stderr
        )
    except subprocess.CalledProcessError as exc:
        log.warning("could not install Chromium: %s", exc)
    return find_chromium()
