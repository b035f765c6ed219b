"""Where provisioning caches what it builds: outside the repository, reused across runs."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$NURTURE_CACHE_DIR`, else `$XDG_CACHE_HOME/nurture`, else `~/.cache/nurture`."""
    if explicit := os.environ.get("NURTURE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nurture"
