"""Debian's Chromium for the sales inbox's browser test: found, or installed with apt-get
when we are root (CI); otherwise the test says it needs it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from starter.dev.provisioning.debian_packages import apt_install, can_install

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
    if found is not None or not can_install():
        return found
    try:
        apt_install(["chromium"])
    except subprocess.CalledProcessError as exc:
        log.warning("could not install Chromium: %s", exc)
    return find_chromium()
