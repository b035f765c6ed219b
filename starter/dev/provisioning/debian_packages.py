"""Installing Debian packages for the dev stack and CI (PostgreSQL, Chromium, Postfix), the
same way for each: only as root with apt-get, noninteractive, apt's output on stderr."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)


def can_install() -> bool:
    """Whether this process may install packages (root on a Debian-like machine)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str], *, preseed: str = "") -> None:
    """Install `packages`; `preseed` holds debconf answers (e.g. Postfix's mailer type).

    Raises `subprocess.CalledProcessError` when apt-get fails."""
    log.warning("installing %s from Debian packages…", ", ".join(packages))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if preseed:
        subprocess.run(["debconf-set-selections"], input=preseed, text=True, check=True)
    # stdout to stderr: the stdout of `nurture provision` is read by scripts/test.
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *packages],
        check=True,
        env=env,
        stdout=sys.stderr,
    )
